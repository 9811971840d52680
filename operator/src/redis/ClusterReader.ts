/**
 * Read-only access to a CDN's cluster registry in Redis (layout: media-node/contract/src/redis/keys.ts
 * and docs/redis-layout.md). The operator never writes node, stream or relay keys: it lists
 * live nodes (index members whose expiry, in Redis server time, has not passed) and counts
 * live streams, exactly as the layout document tells other readers to.
 */
import type { Redis } from 'ioredis';
import {
  ClusterKeys,
  createRedis,
  NodeIdSchema,
  type NodeRecord,
  NodeRecordSchema,
  redactRedisUrl,
} from '../../../media-node/contract/redis.js';
import type { Logger } from '../logger.js';
import { exponentialDelay } from '../runtime/backoff.js';

export interface ClusterSnapshot {
  /** Live, valid node records (invalid or unknown-version ones are skipped). */
  nodes: NodeRecord[];
  /** Streams whose claim has not expired. */
  liveStreams: number;
  /** Redis server time of the read, ms. */
  serverTime: number;
}

/** A failed read, naming the Redis (without credentials) and what was read. */
export class ClusterReadError extends Error {
  override name = 'ClusterReadError';
  constructor(
    readonly address: string,
    what: string,
    cause: unknown,
  ) {
    super(`cannot read ${what} from ${address}: ${cause instanceof Error ? cause.message : String(cause)}`, {
      cause,
    });
  }
}

const COMMAND_TIMEOUT_MS = 2_000;

export class ClusterReader {
  readonly keys: ClusterKeys;
  readonly address: string;
  readonly #redis: Redis;
  readonly #logger: Logger;

  constructor(url: string, prefix: string, logger: Logger) {
    this.keys = new ClusterKeys(prefix);
    this.address = redactRedisUrl(url);
    this.#logger = logger.child({ redis: this.address, prefix });
    this.#redis = createRedis(url, {
      connectionName: 'rtccdn-operator',
      connectTimeout: COMMAND_TIMEOUT_MS,
      commandTimeout: COMMAND_TIMEOUT_MS,
      // Fail a read within a reconcile instead of queueing it for a Redis that is down: the
      // status then says "unreachable" and the next reconcile tries again.
      maxRetriesPerRequest: 1,
      retryStrategy: (attempt) => exponentialDelay(attempt, { baseMs: 200, maxMs: 5_000 }),
    });
    // Without a listener ioredis prints every connection error; failures surface in reads.
    this.#redis.on('error', (error: Error) => this.#logger.debug({ err: error }, 'redis connection error'));
  }

  async snapshot(): Promise<ClusterSnapshot> {
    let serverTime: number;
    let ids: string[];
    let values: (string | null)[];
    let liveStreams: number;
    try {
      const [seconds, micros] = await this.#redis.time();
      serverTime = Number(seconds) * 1000 + Math.floor(Number(micros) / 1000);
      // Score = expiry in server time: members above `now` are alive (the layout's reader rule).
      ids = (await this.#redis.zrangebyscore(this.keys.nodes, `(${serverTime}`, '+inf')).filter(
        (id) => NodeIdSchema.safeParse(id).success,
      );
      values = ids.length === 0 ? [] : await this.#redis.mget(ids.map((id) => this.keys.node(id)));
      liveStreams = await this.#redis.zcount(this.keys.streams, `(${serverTime}`, '+inf');
    } catch (error) {
      throw new ClusterReadError(this.address, 'the cluster registry', error);
    }
    const nodes: NodeRecord[] = [];
    values.forEach((value, index) => {
      if (value === null) return; // expired between the index read and MGET
      let parsed: unknown;
      try {
        parsed = JSON.parse(value);
      } catch {
        parsed = undefined;
      }
      const result = NodeRecordSchema.safeParse(parsed);
      if (result.success) nodes.push(result.data);
      else this.#logger.warn({ node: ids[index] }, 'skipped an invalid node record');
    });
    return { nodes, liveStreams, serverTime };
  }

  close(): void {
    this.#redis.disconnect();
  }
}

/**
 * One reader per Redis URL and prefix, shared by the reconcilers; readers unused for
 * `idleMs` are closed (CDNs deleted, URLs changed).
 */
export class ClusterReaders {
  readonly #logger: Logger;
  readonly #idleMs: number;
  readonly #readers = new Map<string, { reader: ClusterReader; lastUsed: number }>();
  readonly #sweeper: NodeJS.Timeout;

  constructor(logger: Logger, options: { idleMs?: number } = {}) {
    this.#logger = logger;
    this.#idleMs = options.idleMs ?? 10 * 60_000;
    this.#sweeper = setInterval(() => this.#sweep(), Math.min(this.#idleMs, 60_000));
    this.#sweeper.unref();
  }

  get(url: string, prefix: string): ClusterReader {
    const key = `${prefix}\n${url}`;
    let entry = this.#readers.get(key);
    if (!entry) {
      entry = { reader: new ClusterReader(url, prefix, this.#logger), lastUsed: Date.now() };
      this.#readers.set(key, entry);
    }
    entry.lastUsed = Date.now();
    return entry.reader;
  }

  closeAll(): void {
    clearInterval(this.#sweeper);
    for (const { reader } of this.#readers.values()) reader.close();
    this.#readers.clear();
  }

  #sweep(): void {
    const now = Date.now();
    for (const [key, { reader, lastUsed }] of this.#readers) {
      if (now - lastUsed < this.#idleMs) continue;
      reader.close();
      this.#readers.delete(key);
    }
  }
}
