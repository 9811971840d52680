import type { RedisOptions } from 'ioredis';

const CONNECT_TIMEOUT_MS = 2000;
/** Reconnect backoff: 100 ms doubling to 2 s, with jitter so that nodes do not reconnect in step. */
const RECONNECT_BASE_MS = 100;
const RECONNECT_MAX_MS = 2000;

/**
 * How every rtccdn program talks to Redis: fail fast while disconnected instead of queueing —
 * a claim or an ACL write that waits for Redis to come back would be answered long after its
 * caller gave up; callers decide what to do (answer 503, report a condition, retry) — and keep
 * reconnecting, with backoff, forever.
 */
export function failFastRedisOptions(commandTimeoutMs: number): RedisOptions {
  return {
    enableOfflineQueue: false,
    // In-flight commands fail when the connection drops (flushed at the first retry) and are
    // not re-sent on reconnection: a claim re-sent behind its caller's back would leak a lease.
    maxRetriesPerRequest: 0,
    autoResendUnfulfilledCommands: false,
    commandTimeout: commandTimeoutMs,
    connectTimeout: CONNECT_TIMEOUT_MS,
    retryStrategy: reconnectDelayMs,
  };
}

/** Exponential backoff with "equal jitter": half fixed, half random, capped. Never gives up. */
export function reconnectDelayMs(attempt: number): number {
  const ceiling = Math.min(RECONNECT_MAX_MS, RECONNECT_BASE_MS * 2 ** Math.min(Math.max(attempt - 1, 0), 16));
  return Math.round(ceiling / 2 + (Math.random() * ceiling) / 2);
}
