import { Redis, type RedisOptions } from 'ioredis';

const CONNECT_TIMEOUT_MS = 2000;
/** Reconnect backoff: 100 ms doubling to 2 s, with jitter so that nodes do not reconnect in step. */
const RECONNECT_BASE_MS = 100;
const RECONNECT_MAX_MS = 2000;
const DEFAULT_SENTINEL_PORT = 26379;
/** How long an ACL write waits for replicas to have it before it is reported failed. */
export const REPLICA_ACK_TIMEOUT_MS = 500;

/**
 * Where a Redis URL points: one server (`redis://`, `rediss://`), or the primary of a
 * Sentinel-managed group (`redis+sentinel://`, `rediss+sentinel://`):
 *
 *   redis+sentinel://[[user]:password@]host[:port][,host[:port]…]/<master name>[/<db>][?options]
 *
 * The hosts are Sentinels (port 26379 by default); the user and password are the data nodes'.
 * Options: `sentinelPassword`, `sentinelUsername` (when the Sentinels require auth), `acks` —
 * replicas an ACL write must reach before it is acknowledged (default 1; 0 turns the wait off).
 * `rediss+sentinel://` uses TLS to the Sentinels and the data nodes.
 *
 * Redis Cluster is not supported: the layout's scripts touch several keys (a record, its index,
 * the ACL version counter and channel) that Redis Cluster would refuse unless they hash to one
 * slot — a hash-tagged prefix ("{rtccdn}:") would put a whole CDN on one shard anyway.
 */
export type RedisTarget =
  | { kind: 'server'; url: string }
  | {
      kind: 'sentinel';
      sentinels: { host: string; port: number }[];
      masterName: string;
      db: number;
      tls: boolean;
      username?: string;
      password?: string;
      sentinelUsername?: string;
      sentinelPassword?: string;
      /** Replicas an ACL write must reach before it is acknowledged. */
      acks: number;
    };

/** The URL schemes parseRedisUrl() accepts (the CDN resource validates spec.redis.url with it). */
export const REDIS_URL_PATTERN = /^(rediss?|rediss?\+sentinel):\/\//;

/** A Redis URL that cannot be used; the message ("must be …", "has …") never contains credentials. */
export class RedisUrlError extends TypeError {
  override name = 'RedisUrlError';
}

const SENTINEL_URL =
  /^(rediss?)\+sentinel:\/\/(?:([^@/]*)@)?([^/?#@]+)\/([^/?#]+)(?:\/(\d{1,5}))?\/?(?:\?([^#]*))?$/;
const HOST_PORT = /^(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9.-]+)(?::(\d{1,5}))?$/;
const MASTER_NAME = /^[A-Za-z0-9._-]{1,128}$/;
const SENTINEL_OPTIONS = new Set(['sentinelPassword', 'sentinelUsername', 'acks']);

/** Parses a Redis URL (see RedisTarget); throws RedisUrlError naming what is wrong. */
export function parseRedisUrl(url: string): RedisTarget {
  if (/^rediss?:\/\//.test(url)) {
    try {
      new URL(url);
    } catch {
      throw new RedisUrlError('must be a valid redis:// or rediss:// URL');
    }
    return { kind: 'server', url };
  }
  const match = SENTINEL_URL.exec(url);
  if (!match) {
    throw new RedisUrlError(
      /^rediss?\+sentinel:/.test(url)
        ? 'must be redis+sentinel://[[user]:password@]host[:port][,host[:port]…]/<master name>[/<db>][?options]'
        : 'must be a redis://, rediss://, redis+sentinel:// or rediss+sentinel:// URL',
    );
  }
  const [, scheme, userinfo, hosts, masterName, db, query] = match;
  const sentinels = hosts!.split(',').map((entry) => {
    const hostPort = HOST_PORT.exec(entry);
    const port = Number(hostPort?.[2] ?? DEFAULT_SENTINEL_PORT);
    if (!hostPort || port < 1 || port > 65535)
      throw new RedisUrlError(`has an invalid Sentinel address "${entry}"`);
    return { host: hostPort[1]!.replace(/^\[|\]$/g, ''), port };
  });
  const name = decode(masterName!, 'master name');
  if (!MASTER_NAME.test(name)) throw new RedisUrlError(`has an invalid Sentinel master name "${name}"`);
  const params = new URLSearchParams(query ?? '');
  for (const key of params.keys()) {
    if (!SENTINEL_OPTIONS.has(key)) throw new RedisUrlError(`has an unknown option "${key}"`);
  }
  const acks = Number(params.get('acks') ?? 1);
  if (!Number.isInteger(acks) || acks < 0 || acks > 16) throw new RedisUrlError('has acks outside 0 to 16');
  const target: RedisTarget = {
    kind: 'sentinel',
    sentinels,
    masterName: name,
    db: Number(db ?? 0),
    tls: scheme === 'rediss',
    acks,
  };
  if (userinfo) {
    const colon = userinfo.indexOf(':');
    const user = decode(colon < 0 ? userinfo : userinfo.slice(0, colon), 'user');
    if (user) target.username = user;
    if (colon >= 0) target.password = decode(userinfo.slice(colon + 1), 'password');
  }
  const sentinelUsername = params.get('sentinelUsername');
  const sentinelPassword = params.get('sentinelPassword');
  if (sentinelUsername) target.sentinelUsername = sentinelUsername;
  if (sentinelPassword) target.sentinelPassword = sentinelPassword;
  return target;
}

function decode(value: string, what: string): string {
  try {
    return decodeURIComponent(value);
  } catch {
    throw new RedisUrlError(`has a ${what} that is not percent-encoded properly`);
  }
}

/** The URL without credentials, for logs and status messages: redis://host:6379/0, redis+sentinel://a:26379,b:26379/name. */
export function redactRedisUrl(url: string): string {
  try {
    const target = parseRedisUrl(url);
    if (target.kind === 'sentinel') {
      const hosts = target.sentinels
        .map(({ host, port }) => `${host.includes(':') ? `[${host}]` : host}:${port}`)
        .join(',');
      return `${target.tls ? 'rediss' : 'redis'}+sentinel://${hosts}/${target.masterName}${target.db ? `/${target.db}` : ''}`;
    }
    const parsed = new URL(url);
    return `${parsed.protocol}//${parsed.host}${parsed.pathname === '/' ? '' : parsed.pathname}`;
  } catch {
    return 'redis (unparseable URL)';
  }
}

/**
 * A client for `url` with `options` (plus what its kind needs). Through Sentinel, the client asks
 * the Sentinels for the current primary on every (re)connection, verifies the role of the server
 * it reaches, and drops its connection as soon as a Sentinel announces a failover (or a write is
 * refused with READONLY by a demoted primary), so callers see a failover as a short disconnection.
 */
export function createRedis(url: string, options: RedisOptions = {}): Redis {
  const target = parseRedisUrl(url);
  const readonlyReconnects: RedisOptions = {
    // A primary demoted under us answers writes with READONLY: reconnect (to the new primary),
    // without re-sending the command (1, not 2: callers decide about retries).
    reconnectOnError: (error) => (error.message.startsWith('READONLY') ? 1 : false),
  };
  if (target.kind === 'server') return new Redis(url, { ...readonlyReconnects, ...options });
  const client = new Redis({
    ...readonlyReconnects,
    sentinels: target.sentinels,
    name: target.masterName,
    role: 'master',
    db: target.db,
    ...(target.username ? { username: target.username } : {}),
    ...(target.password ? { password: target.password } : {}),
    ...(target.sentinelUsername ? { sentinelUsername: target.sentinelUsername } : {}),
    ...(target.sentinelPassword ? { sentinelPassword: target.sentinelPassword } : {}),
    ...(target.tls ? { tls: {}, sentinelTLS: {}, enableTLSForSentinelMode: true } : {}),
    // Subscribes to the Sentinels' +switch-master: the failover is followed at once, not when
    // the old primary's connection finally breaks.
    failoverDetector: true,
    sentinelRetryStrategy: reconnectDelayMs,
    sentinelCommandTimeout: options.commandTimeout ?? CONNECT_TIMEOUT_MS,
    // Learn Sentinels added later (a Sentinel that is replaced keeps the group reachable).
    updateSentinels: true,
    ...options,
  });
  return reconnectAfterUnexpectedEnd(client);
}

/**
 * ioredis (6.0) ends a Sentinel client for good when a connection attempt fails outright — as
 * when its failover detector drops the connection while the client is still asking the Sentinels
 * for the new primary (`Connection is closed.`, status `end`): nothing reconnects it, and every
 * later command fails (an origin's ACL writes failed until restart). Such a client is connected
 * again here, with backoff, unless its owner closed it (quit / disconnect).
 */
function reconnectAfterUnexpectedEnd(client: Redis): Redis {
  let closedByOwner = false;
  let attempt = 0;
  const quit = client.quit.bind(client);
  const disconnect = client.disconnect.bind(client);
  client.quit = ((...args: Parameters<Redis['quit']>) => {
    closedByOwner = true;
    return quit(...args);
  }) as Redis['quit'];
  client.disconnect = (reconnect = false) => {
    if (!reconnect) closedByOwner = true;
    disconnect(reconnect);
  };
  client.on('ready', () => {
    attempt = 0;
  });
  client.on('end', () => {
    if (closedByOwner) return;
    setTimeout(() => {
      if (!closedByOwner && client.status === 'end') client.connect().catch(() => undefined);
    }, reconnectDelayMs(++attempt)).unref();
  });
  return client;
}

/**
 * Replicas a write must reach before it is acknowledged to its caller, for this URL: 0 for a
 * single server (it has none to wait for), the URL's `acks` (default 1) behind Sentinel, so that
 * a failover never loses a write its caller was told had succeeded.
 */
export function replicaAcks(url: string): number {
  const target = parseRedisUrl(url);
  return target.kind === 'sentinel' ? target.acks : 0;
}

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
