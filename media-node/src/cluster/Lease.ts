import type { Redis } from 'ioredis';
import { RedisScript } from '../../contract/redis.js';

export { RedisScript };

/**
 * Lua: `expiry(ttl)` = Redis server time + ttl, in ms, as an integer string. Index scores use the
 * server's clock so that the nodes' clocks (skewed or not) never decide what is expired.
 * Since Redis 5, scripts replicate their effects, so reading TIME before writing is allowed.
 */
export const LUA_SERVER_EXPIRY = `
local function expiry(ttl)
  local now = redis.call('TIME')
  return string.format('%.0f', tonumber(now[1]) * 1000 + math.floor(tonumber(now[2]) / 1000) + tonumber(ttl))
end
`;

// KEYS[1] lease key, KEYS[2] optional index ZSET.
// ARGV[1] value, ARGV[2] ttl ms, ARGV[3] index member, ARGV[4] channel ('' for none), ARGV[5] message.
const INDEX_AND_ANNOUNCE = `
local function index_and_announce()
  if KEYS[2] then redis.call('ZADD', KEYS[2], expiry(ARGV[2]), ARGV[3]) end
  if ARGV[4] ~= '' then redis.call('PUBLISH', ARGV[4], ARGV[5]) end
end
`;

const ACQUIRE = new RedisScript(
  'lease-acquire',
  `${LUA_SERVER_EXPIRY}${INDEX_AND_ANNOUNCE}
if redis.call('SET', KEYS[1], ARGV[1], 'NX', 'PX', ARGV[2]) then
  index_and_announce()
  return {1}
end
return {0, redis.call('GET', KEYS[1])}
`,
);

// Same KEYS/ARGV as acquire; the announcement is published only when the lease is re-acquired.
const REFRESH = new RedisScript(
  'lease-refresh',
  `${LUA_SERVER_EXPIRY}${INDEX_AND_ANNOUNCE}
local current = redis.call('GET', KEYS[1])
if current == ARGV[1] then
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
  if KEYS[2] then redis.call('ZADD', KEYS[2], expiry(ARGV[2]), ARGV[3]) end
  return {1}
end
if not current then
  redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
  index_and_announce()
  return {2}
end
return {0, current}
`,
);

// Same KEYS/ARGV as acquire, plus ARGV[6]: the claimId of the holder to replace. Values are JSON
// records with a claimId (keys.ts); one that cannot be decoded is never replaced.
const TAKE_OVER = new RedisScript(
  'lease-take-over',
  `${LUA_SERVER_EXPIRY}${INDEX_AND_ANNOUNCE}
local current = redis.call('GET', KEYS[1])
if current then
  local ok, record = pcall(cjson.decode, current)
  if not ok or type(record) ~= 'table' or record.claimId ~= ARGV[6] then return {0, current} end
end
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
index_and_announce()
return {1}
`,
);

// KEYS[1] lease key, KEYS[2] optional index ZSET.
// ARGV[1] value, ARGV[2] index member, ARGV[3] channel ('' for none), ARGV[4] message.
const RELEASE = new RedisScript(
  'lease-release',
  `
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
redis.call('DEL', KEYS[1])
if KEYS[2] then redis.call('ZREM', KEYS[2], ARGV[2]) end
if ARGV[3] ~= '' then redis.call('PUBLISH', ARGV[3], ARGV[4]) end
return 1
`,
);

/** A pub/sub message published in the same atomic step as a lease change. */
export interface Announcement {
  channel: string;
  message: string;
}

export interface LeaseOptions {
  key: string;
  /**
   * The holder's record, which must be unique per holder (carry a random claim id): holding
   * the lease means that the key still holds exactly this value.
   */
  value: string;
  ttlMs: number;
  /** A ZSET that lists the lease: member → expiry (Redis server time), kept with the key. */
  index?: { key: string; member: string };
}

export type AcquireResult = { acquired: true } | { acquired: false; holder: string };

/** `reacquired`: the key had expired (or vanished with a Redis restart) and nobody took it. */
export type RefreshResult = { held: true; reacquired: boolean } | { held: false; holder: string };

/**
 * A lease on one Redis key: acquired with SET NX PX, refreshed and released only by its holder
 * (compare the value, then act, in one Lua script). Redis errors are thrown as they come: the
 * caller knows what the lease is for and adds that context.
 */
export class Lease {
  readonly key: string;
  readonly value: string;
  readonly ttlMs: number;
  readonly index: { key: string; member: string } | undefined;
  readonly #redis: Redis;

  constructor(redis: Redis, options: LeaseOptions) {
    this.#redis = redis;
    this.key = options.key;
    this.value = options.value;
    this.ttlMs = options.ttlMs;
    this.index = options.index;
  }

  /** Caches the lease scripts on a (re)connected server. */
  static async loadScripts(redis: Redis): Promise<void> {
    await Promise.all([ACQUIRE, REFRESH, TAKE_OVER, RELEASE].map((script) => script.load(redis)));
  }

  /** Takes the lease if nobody holds it; otherwise returns the holder's value. */
  async acquire(announce?: Announcement): Promise<AcquireResult> {
    const reply = (await ACQUIRE.run(this.#redis, this.#keys(), this.#args(announce))) as [number, string?];
    return reply[0] === 1 ? { acquired: true } : { acquired: false, holder: reply[1] ?? '' };
  }

  /**
   * Takes the lease from the holder whose claim is `claimId` (found dead by the caller: it is not
   * waited out for its TTL), or if nobody holds it; otherwise returns the holder's value.
   */
  async takeOver(claimId: string, announce?: Announcement): Promise<AcquireResult> {
    const reply = (await TAKE_OVER.run(this.#redis, this.#keys(), [...this.#args(announce), claimId])) as [
      number,
      string?,
    ];
    return reply[0] === 1 ? { acquired: true } : { acquired: false, holder: reply[1] ?? '' };
  }

  /**
   * Extends the lease if it is still ours; takes it again if it expired and is free (and then
   * publishes `announce`); reports the holder if someone else has it.
   */
  async refresh(announce?: Announcement): Promise<RefreshResult> {
    const reply = (await REFRESH.run(this.#redis, this.#keys(), this.#args(announce))) as [number, string?];
    if (reply[0] === 0) return { held: false, holder: reply[1] ?? '' };
    return { held: true, reacquired: reply[0] === 2 };
  }

  /** Deletes the key (and index member) if it is still ours; false if it was not. */
  async release(announce?: Announcement): Promise<boolean> {
    const reply = await RELEASE.run(this.#redis, this.#keys(), [
      this.value,
      this.index?.member ?? '',
      announce?.channel ?? '',
      announce?.message ?? '',
    ]);
    return reply === 1;
  }

  #keys(): string[] {
    return this.index ? [this.key, this.index.key] : [this.key];
  }

  #args(announce: Announcement | undefined): (string | number)[] {
    return [
      this.value,
      this.ttlMs,
      this.index?.member ?? '',
      announce?.channel ?? '',
      announce?.message ?? '',
    ];
  }
}
