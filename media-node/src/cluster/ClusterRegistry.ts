import { randomUUID } from 'node:crypto';
import { Redis, type RedisOptions } from 'ioredis';
import { z } from 'zod';
import type { Logger } from '../logger.js';
import { TypedEmitter } from '../TypedEmitter.js';
import {
  ClusterEventSchema,
  ClusterKeys,
  DEFAULT_PREFIX,
  InternalUrlSchema,
  KeyPrefixSchema,
  LAYOUT_VERSION,
  type MediaKind,
  NodeIdSchema,
  type NodeLoad,
  NodeLoadSchema,
  type NodeRecord,
  NodeRecordSchema,
  type NodeRole,
  NodeRoleSchema,
  RegionSchema,
  type RelayRecord,
  RelayRecordSchema,
  type StreamDownMessage,
  StreamNameSchema,
  type StreamRecord,
  StreamRecordSchema,
  type StreamUpMessage,
} from './keys.js';
import { type Announcement, Lease, LUA_SERVER_EXPIRY, RedisScript } from './Lease.js';

const DEFAULT_HEARTBEAT_MS = 1000;
/**
 * A dead node and its claims vanish within this. Keep it ≤ 5 s: a publisher whose origin died
 * can publish the same name on another origin only once the dead claim has expired.
 */
const DEFAULT_TTL_MS = 4000;
/** Upper bound for any one command: a hung (not disconnected) Redis must not hang callers. */
const DEFAULT_COMMAND_TIMEOUT_MS = 1000;
const CONNECT_TIMEOUT_MS = 2000;
/** Reconnect backoff: 100 ms doubling to 2 s, with jitter so that nodes do not reconnect in step. */
const RECONNECT_BASE_MS = 100;
const RECONNECT_MAX_MS = 2000;
/** close() gives up on cleaning Redis after this: whatever is left expires within the TTL. */
const CLOSE_BUDGET_MS = 1000;
const SHUTDOWN_REASON = 'node-shutdown';

// KEYS[1] node key, KEYS[2] nodes ZSET; ARGV[1] record, ARGV[2] ttl ms, ARGV[3] node id.
const REGISTER_NODE = new RedisScript(
  'node-register',
  `${LUA_SERVER_EXPIRY}
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
redis.call('ZADD', KEYS[2], expiry(ARGV[2]), ARGV[3])
return 1
`,
);

// KEYS[1] node key, KEYS[2] nodes ZSET; ARGV[1] node id.
const UNREGISTER_NODE = new RedisScript(
  'node-unregister',
  `
redis.call('DEL', KEYS[1])
redis.call('ZREM', KEYS[2], ARGV[1])
return 1
`,
);

// KEYS[1] index ZSET. Prunes members whose expiry (server time) has passed, returns the rest.
const LIVE_MEMBERS = new RedisScript(
  'index-live-members',
  `${LUA_SERVER_EXPIRY}
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', '(' .. expiry(0))
return redis.call('ZRANGE', KEYS[1], 0, -1)
`,
);

const REGISTRY_SCRIPTS = [REGISTER_NODE, UNREGISTER_NODE, LIVE_MEMBERS];

/** Who this node is in the cluster. */
export const ClusterNodeIdentitySchema = z.object({
  id: NodeIdSchema,
  role: NodeRoleSchema,
  region: RegionSchema,
  internalUrl: InternalUrlSchema,
});
export type ClusterNodeIdentity = z.infer<typeof ClusterNodeIdentitySchema>;

const OptionsSchema = z
  .object({
    redisUrl: z.string().regex(/^rediss?:\/\//, 'redisUrl must be a redis:// or rediss:// URL'),
    prefix: KeyPrefixSchema.default(DEFAULT_PREFIX),
    self: ClusterNodeIdentitySchema,
    heartbeatMs: z.number().int().min(50).max(60_000).default(DEFAULT_HEARTBEAT_MS),
    ttlMs: z.number().int().min(100).max(600_000).default(DEFAULT_TTL_MS),
    commandTimeoutMs: z.number().int().min(50).max(60_000).default(DEFAULT_COMMAND_TIMEOUT_MS),
  })
  .refine((options) => options.ttlMs >= 2 * options.heartbeatMs, {
    message: 'ttlMs must be at least twice heartbeatMs (one late heartbeat must not expire the node)',
    path: ['ttlMs'],
  });

export interface ClusterRegistryOptions {
  /** redis:// or rediss:// URL (credentials included, if any). */
  redisUrl: string;
  /** Key prefix of the layout (keys.ts). Default "rtccdn:". */
  prefix?: string;
  self: ClusterNodeIdentity;
  /** How often the node record and every held lease are refreshed. Default 1000 ms. */
  heartbeatMs?: number;
  /** TTL of the node record and of every lease: how fast a dead node vanishes. Default 4000 ms. */
  ttlMs?: number;
  /** A command without an answer after this fails (hung Redis). Default 1000 ms. */
  commandTimeoutMs?: number;
  logger: Logger;
}

export type StreamClaimResult =
  | { claimed: true; claimId: string; record: StreamRecord }
  | { claimed: false; holder: StreamRecord };

/** Worded like Lease.acquire(), as the relay code (RelayDirectory) consumes it. */
export type RelayClaimResult =
  | { acquired: true; claimId: string; record: RelayRecord }
  | { acquired: false; holder: RelayRecord };

/** A lease this registry held and found taken by someone else (or unreadable) on a refresh. */
export type LeaseLost =
  | { kind: 'stream'; name: string; holder: StreamRecord | undefined }
  | { kind: 'relay'; region: string; name: string; holder: RelayRecord | undefined };

export type ClusterRegistryEvents = {
  /** Connected, subscribed, and the last heartbeat succeeded (again). */
  ready: [];
  /** Lost Redis (or a heartbeat failed) while ready, or could not reach it at start. */
  unavailable: [error: ClusterRegistryError];
  /** A stream-up message, from any node including this one. */
  streamup: [message: StreamUpMessage];
  /** A stream-down message, from any node including this one. */
  streamdown: [message: StreamDownMessage];
  /** Another holder owns a lease this node held: stop serving it here, never keep it silently. */
  leaselost: [lost: LeaseLost];
};

/** A failed registry operation: what was attempted, on which key, and why (cause: the Redis error). */
export class ClusterRegistryError extends Error {
  override name = 'ClusterRegistryError';
  constructor(
    readonly operation: string,
    readonly key: string,
    cause: unknown,
  ) {
    super(`cluster registry: ${operation} ${key} failed: ${describeRedisError(cause)}`, { cause });
  }
}

interface HeldStream {
  lease: Lease;
  record: StreamRecord;
}

interface HeldRelay {
  lease: Lease;
  record: RelayRecord;
}

type Availability = 'starting' | 'ready' | 'unavailable';

/**
 * This node's membership in the cluster, over Redis (layout: keys.ts): it registers the node
 * with a TTL and keeps it alive, claims the streams it originates and the regional relays it
 * pulls (leases refreshed with every heartbeat), and tells the rest of the node about streams
 * going up and down anywhere.
 *
 * Redis being down never throws out of create() and never stops media: calls fail fast with a
 * ClusterRegistryError (callers decide what to do), the connection is retried with backoff, and
 * on reconnection everything this node holds is registered again — or reported as lost if
 * another node took it meanwhile.
 */
export class ClusterRegistry extends TypedEmitter<ClusterRegistryEvents> {
  readonly self: ClusterNodeIdentity;
  readonly keys: ClusterKeys;
  readonly heartbeatMs: number;
  readonly ttlMs: number;
  readonly #redis: Redis;
  /** A connection in subscriber mode can run no other command: pub/sub gets its own. */
  readonly #subscriber: Redis;
  readonly #logger: Logger;
  readonly #redisAddress: string;
  readonly #startedAt = Date.now();
  readonly #heartbeatTimer: NodeJS.Timeout;
  readonly #streams = new Map<string, HeldStream>();
  /** By relay key (region and name). */
  readonly #relays = new Map<string, HeldRelay>();
  #load: NodeLoad = { viewers: 0, streams: 0, egressBps: 0, cpu: 0 };
  #draining = false;
  #heartbeat: Promise<boolean> | undefined;
  #followUpHeartbeat: Promise<boolean> | undefined;
  #connected = false;
  #subscribed = false;
  #heartbeatSucceeded = false;
  #availability: Availability = 'starting';
  #unavailableSince = 0;
  #lastConnectionError: Error | undefined;
  #closing: Promise<void> | undefined;

  private constructor(options: z.infer<typeof OptionsSchema>, logger: Logger) {
    super();
    this.self = options.self;
    this.keys = new ClusterKeys(options.prefix);
    this.heartbeatMs = options.heartbeatMs;
    this.ttlMs = options.ttlMs;
    this.#logger = logger.child({ component: 'cluster-registry' });
    this.#redisAddress = redactedAddress(options.redisUrl);
    const connectionOptions: RedisOptions = {
      // Fail fast while disconnected instead of queueing: a claim that waits for Redis to come
      // back would be answered long after the publisher gave up. Callers decide what to do.
      enableOfflineQueue: false,
      // In-flight commands fail when the connection drops (flushed at the first retry) and are
      // not re-sent on reconnection: a claim re-sent behind its caller's back would leak a lease.
      maxRetriesPerRequest: 0,
      autoResendUnfulfilledCommands: false,
      commandTimeout: options.commandTimeoutMs,
      connectTimeout: CONNECT_TIMEOUT_MS,
      retryStrategy: reconnectDelayMs,
      // Re-subscribed by hand on 'ready', so that readiness means "the subscription is active".
      autoResubscribe: false,
    };
    this.#redis = new Redis(options.redisUrl, {
      ...connectionOptions,
      connectionName: `rtccdn-registry-${options.self.id}`,
    });
    this.#subscriber = new Redis(options.redisUrl, {
      ...connectionOptions,
      connectionName: `rtccdn-events-${options.self.id}`,
    });
    this.#watchCommandConnection();
    this.#watchSubscriber();
    this.#heartbeatTimer = setInterval(() => {
      // A heartbeat still in flight (slow or timing out) is not stacked upon.
      if (!this.#heartbeat) void this.heartbeatNow();
    }, this.heartbeatMs);
    this.#heartbeatTimer.unref();
  }

  /**
   * Starts the registry and returns at once: it connects in the background and keeps retrying
   * while Redis is unreachable (`ready` / `unavailable` events tell). Throws only for invalid
   * options.
   */
  static create(options: ClusterRegistryOptions): ClusterRegistry {
    const { logger, ...rest } = options;
    const result = OptionsSchema.safeParse(rest);
    if (!result.success) {
      throw new TypeError(`invalid cluster registry options: ${z.prettifyError(result.error)}`);
    }
    return new ClusterRegistry(result.data, logger);
  }

  /** Connected (both connections) and the last heartbeat succeeded. */
  get ready(): boolean {
    return this.#availability === 'ready' && !this.#closing;
  }

  /** Published in the node record from the next heartbeat on. */
  setLoad(load: NodeLoad): void {
    const result = NodeLoadSchema.safeParse(load);
    if (!result.success) throw new RangeError(`invalid node load: ${z.prettifyError(result.error)}`);
    this.#load = result.data;
  }

  /** Published in the node record from the next heartbeat on. */
  setDraining(draining: boolean): void {
    this.#draining = draining;
  }

  /**
   * Writes the node record and refreshes every held lease now. Resolves true on success; never
   * rejects (failures change `ready` and are logged on the state change).
   */
  heartbeatNow(): Promise<boolean> {
    if (this.#closing) return Promise.resolve(false);
    if (this.#heartbeat) {
      // The one in flight may predate a reconnection or a new claim: run one more after it.
      this.#followUpHeartbeat ??= this.#heartbeat.then(() => {
        this.#followUpHeartbeat = undefined;
        return this.heartbeatNow();
      });
      return this.#followUpHeartbeat;
    }
    this.#heartbeat = this.#beat().finally(() => {
      this.#heartbeat = undefined;
    });
    return this.#heartbeat;
  }

  // --- streams ------------------------------------------------------------------------------------

  /**
   * Claims `name` CDN-wide for this node (its origin) and announces stream-up. Fails (no throw)
   * when another node holds it, returning that holder. Throws ClusterRegistryError if Redis is
   * unreachable.
   */
  async claimStream(claim: { name: string; kinds: MediaKind[] }): Promise<StreamClaimResult> {
    const key = this.keys.stream(claim.name);
    this.#assertOpen('claimStream', key);
    const record = validated(StreamRecordSchema, 'stream claim', {
      v: LAYOUT_VERSION,
      name: claim.name,
      nodeId: this.self.id,
      region: this.self.region,
      internalUrl: this.self.internalUrl,
      claimId: randomUUID(),
      startedAt: Date.now(),
      kinds: claim.kinds,
    });
    const lease = this.#streamLease(record);
    const result = await this.#command('claimStream', key, () =>
      lease.acquire(this.#announcement(this.#streamUp(record))),
    );
    if (!result.acquired) {
      return { claimed: false, holder: holderRecord(StreamRecordSchema, 'claimStream', key, result.holder) };
    }
    if (this.#closing) {
      // close() already released what it knew of: this claim would otherwise linger for a TTL.
      await lease
        .release(this.#announcement(this.#streamDown(record, SHUTDOWN_REASON)))
        .catch(() => undefined);
      throw new ClusterRegistryError('claimStream', key, new Error('the registry closed during the claim'));
    }
    this.#streams.set(record.name, { lease, record });
    this.#logger.info({ stream: record.name, claimId: record.claimId }, 'stream claimed');
    return { claimed: true, claimId: record.claimId, record };
  }

  /**
   * Releases a claim this node holds (compare-and-delete) and announces stream-down. False if
   * this node did not hold it (any more). Even when this throws (Redis unreachable), the claim
   * is no longer refreshed and expires within the TTL.
   */
  async releaseStream(name: string, reason: string): Promise<boolean> {
    const held = this.#streams.get(name);
    if (!held) return false;
    // Forgotten before the release is sent: a heartbeat starting now will not refresh it, and one
    // already started sent its refresh first (same connection, in order), so nothing resurrects it.
    this.#streams.delete(name);
    const released = await this.#command('releaseStream', held.lease.key, () =>
      held.lease.release(this.#announcement(this.#streamDown(held.record, reason))),
    );
    if (released) this.#logger.info({ stream: name, reason }, 'stream released');
    else this.#logger.warn({ stream: name, reason }, 'stream claim was no longer ours at release');
    return released;
  }

  /** The live claim on `name`, or undefined (not live, or unreadable: logged). */
  async lookupStream(name: string): Promise<StreamRecord | undefined> {
    const key = this.keys.stream(name);
    const value = await this.#command('lookupStream', key, () => this.#redis.get(key));
    return value === null ? undefined : this.#parseValue(StreamRecordSchema, value, key);
  }

  /** Every live stream of the cluster, by name. */
  async listStreams(): Promise<StreamRecord[]> {
    return this.#listIndexed('listStreams', this.keys.streams, StreamNameSchema, StreamRecordSchema, {
      keyOf: (name) => this.keys.stream(name),
      idOf: (record) => record.name,
    });
  }

  // --- nodes --------------------------------------------------------------------------------------

  /** Live nodes, by id; `role` matches exactly (pass ['edge', 'all'] for "nodes serving viewers"). */
  async listNodes(
    filter: { role?: NodeRole | readonly NodeRole[]; region?: string } = {},
  ): Promise<NodeRecord[]> {
    const nodes = await this.#listIndexed('listNodes', this.keys.nodes, NodeIdSchema, NodeRecordSchema, {
      keyOf: (id) => this.keys.node(id),
      idOf: (record) => record.id,
    });
    const roles = filter.role === undefined ? undefined : ([] as NodeRole[]).concat(filter.role);
    return nodes.filter(
      (node) =>
        (roles === undefined || roles.includes(node.role)) &&
        (filter.region === undefined || node.region === filter.region),
    );
  }

  // --- regional relays ----------------------------------------------------------------------------

  /** Claims being the edge of `region` that pulls `name` from its origin for the region's edges. */
  async claimRelay(region: string, name: string): Promise<RelayClaimResult> {
    const key = this.keys.relay(region, name);
    this.#assertOpen('claimRelay', key);
    const record = validated(RelayRecordSchema, 'relay lease', {
      v: LAYOUT_VERSION,
      name,
      region,
      nodeId: this.self.id,
      internalUrl: this.self.internalUrl,
      claimId: randomUUID(),
      startedAt: Date.now(),
    });
    const lease = new Lease(this.#redis, { key, value: JSON.stringify(record), ttlMs: this.ttlMs });
    const result = await this.#command('claimRelay', key, () => lease.acquire());
    if (!result.acquired) {
      return { acquired: false, holder: holderRecord(RelayRecordSchema, 'claimRelay', key, result.holder) };
    }
    if (this.#closing) {
      await lease.release().catch(() => undefined);
      throw new ClusterRegistryError('claimRelay', key, new Error('the registry closed during the claim'));
    }
    this.#relays.set(key, { lease, record });
    this.#logger.info({ stream: name, region, claimId: record.claimId }, 'relay lease claimed');
    return { acquired: true, claimId: record.claimId, record };
  }

  /**
   * Releases a relay lease this node holds (compare-and-delete); a no-op if it holds none. A
   * lease found taken by another edge meanwhile is left alone (and logged).
   */
  async releaseRelay(region: string, name: string): Promise<void> {
    const key = this.keys.relay(region, name);
    const held = this.#relays.get(key);
    if (!held) return;
    this.#relays.delete(key); // before sending: see releaseStream
    const released = await this.#command('releaseRelay', key, () => held.lease.release());
    if (!released) this.#logger.warn({ stream: name, region }, 'relay lease was no longer ours at release');
  }

  /** The edge relaying `name` for `region`, or undefined. */
  async lookupRelay(region: string, name: string): Promise<RelayRecord | undefined> {
    const key = this.keys.relay(region, name);
    const value = await this.#command('lookupRelay', key, () => this.#redis.get(key));
    return value === null ? undefined : this.#parseValue(RelayRecordSchema, value, key);
  }

  // --- shutdown -----------------------------------------------------------------------------------

  /**
   * Stops heartbeats, releases every claim and lease (announcing stream-down), unregisters the
   * node and closes both connections. Idempotent; takes at most ~1 s even if Redis is down
   * (what could not be cleaned up then expires within the TTL).
   */
  close(): Promise<void> {
    this.#closing ??= this.#shutdown();
    return this.#closing;
  }

  async #shutdown(): Promise<void> {
    clearInterval(this.#heartbeatTimer);
    const streams = [...this.#streams.values()];
    const relays = [...this.#relays.values()];
    this.#streams.clear();
    this.#relays.clear();
    let outOfBudget = false;
    const cleanup = (async () => {
      const results = await Promise.allSettled([
        ...streams.map((held) =>
          held.lease.release(this.#announcement(this.#streamDown(held.record, SHUTDOWN_REASON))),
        ),
        ...relays.map((held) => held.lease.release()),
        UNREGISTER_NODE.run(this.#redis, [this.keys.node(this.self.id), this.keys.nodes], [this.self.id]),
      ]);
      const failures = results.filter((result) => result.status === 'rejected');
      if (failures.length > 0 && !outOfBudget) {
        this.#logger.warn(
          { failed: failures.length, of: results.length, reason: describeRedisError(failures[0]!.reason) },
          'could not remove this node from Redis; its records expire within the TTL',
        );
      }
      await Promise.allSettled([this.#redis.quit(), this.#subscriber.quit()]);
    })();
    let budget: NodeJS.Timeout | undefined;
    const outOfTime = new Promise<'timeout'>((resolve) => {
      budget = setTimeout(() => resolve('timeout'), CLOSE_BUDGET_MS);
    });
    if ((await Promise.race([cleanup, outOfTime])) === 'timeout') {
      outOfBudget = true;
      this.#logger.warn(
        { budgetMs: CLOSE_BUDGET_MS },
        'Redis cleanup timed out; records expire within the TTL',
      );
    }
    clearTimeout(budget);
    // Ends the connections whatever state they are in, and stops reconnecting.
    this.#redis.disconnect();
    this.#subscriber.disconnect();
    this.#logger.info('cluster registry closed');
  }

  // --- heartbeat ----------------------------------------------------------------------------------

  async #beat(): Promise<boolean> {
    const streams = [...this.#streams.values()];
    const relays = [...this.#relays.values()];
    const record: NodeRecord = {
      v: LAYOUT_VERSION,
      ...this.self,
      startedAt: this.#startedAt,
      load: this.#load,
      draining: this.#draining,
      updatedAt: Date.now(),
    };
    // Every command is sent in this synchronous block (ordering argument: see releaseStream).
    const nodeWrite = REGISTER_NODE.run(
      this.#redis,
      [this.keys.node(this.self.id), this.keys.nodes],
      [JSON.stringify(record), this.ttlMs, this.self.id],
    );
    const refreshes = [
      ...streams.map((held) => ({
        lease: held.lease,
        outcome: held.lease.refresh(this.#announcement(this.#streamUp(held.record))),
        lose: (holder: string) => this.#loseStream(held, holder),
      })),
      ...relays.map((held) => ({
        lease: held.lease,
        outcome: held.lease.refresh(),
        lose: (holder: string) => this.#loseRelay(held, holder),
      })),
    ];
    // The subscriber only receives, so a dead link (half-open TCP, hung server) would go unnoticed:
    // probe it with each beat too. Its own 'close' then makes the registry unavailable.
    if (this.#subscribed) {
      this.#subscriber.ping().catch((error: unknown) => {
        if (!isTimeout(error) || this.#closing) return;
        this.#logger.debug('subscriber did not answer a ping; reconnecting it');
        this.#subscriber.disconnect(true);
      });
    }
    const [node, ...outcomes] = await Promise.allSettled([nodeWrite, ...refreshes.map((r) => r.outcome)]);

    let failure: ClusterRegistryError | undefined;
    if (node!.status === 'rejected') {
      failure = new ClusterRegistryError('heartbeat', this.keys.node(this.self.id), node!.reason);
    }
    outcomes.forEach((outcome, index) => {
      const refresh = refreshes[index]!;
      if (outcome.status === 'rejected') {
        failure ??= new ClusterRegistryError('heartbeat', refresh.lease.key, outcome.reason);
      } else if (this.#closing) {
        // close() has released everything: results of refreshes sent before it do not matter.
      } else if (!outcome.value.held) {
        refresh.lose(outcome.value.holder);
      } else if (outcome.value.reacquired) {
        this.#logger.info(
          { key: refresh.lease.key },
          'lease re-registered: it had expired (Redis restarted or heartbeats stalled) and was free',
        );
      }
    });

    if (this.#closing) return false;
    if (failure) {
      this.#heartbeatSucceeded = false;
      // Logged by the state change; while already unavailable every failed beat is only debug.
      this.#logger.debug({ err: failure }, 'heartbeat failed');
      this.#updateAvailability(failure);
      if (isTimeout(failure.cause)) {
        // A connection that stopped answering (half-open TCP, hung server) is never closed by
        // the OS in useful time: drop it and reconnect, which also fails pending calls at once.
        this.#redis.disconnect(true);
      }
      return false;
    }
    this.#heartbeatSucceeded = true;
    this.#updateAvailability();
    return true;
  }

  #loseStream(held: HeldStream, holderValue: string): void {
    // Released (or re-claimed) while the refresh was in flight: that is not a loss.
    if (this.#streams.get(held.record.name) !== held) return;
    this.#streams.delete(held.record.name);
    const holder = this.#parseValue(StreamRecordSchema, holderValue, held.lease.key);
    this.#logger.warn(
      { stream: held.record.name, holder: holder?.nodeId, holderClaimId: holder?.claimId },
      'stream claim lost to another holder',
    );
    this.emit('leaselost', { kind: 'stream', name: held.record.name, holder });
  }

  #loseRelay(held: HeldRelay, holderValue: string): void {
    if (this.#relays.get(held.lease.key) !== held) return;
    this.#relays.delete(held.lease.key);
    const holder = this.#parseValue(RelayRecordSchema, holderValue, held.lease.key);
    const { region, name } = held.record;
    this.#logger.warn({ stream: name, region, holder: holder?.nodeId }, 'relay lease lost to another holder');
    this.emit('leaselost', { kind: 'relay', region, name, holder });
  }

  // --- connections and availability -------------------------------------------------------------

  #watchCommandConnection(): void {
    this.#redis.on('ready', () => {
      this.#connected = true;
      this.#lastConnectionError = undefined;
      // Cached before anything else is sent on this connection, so no later script is re-sent in
      // full out of order (a NOSCRIPT retry would reach Redis after commands sent after it).
      for (const script of REGISTRY_SCRIPTS) script.load(this.#redis).catch(() => undefined);
      Lease.loadScripts(this.#redis).catch(() => undefined);
      // Registers the node and every held lease again at once (a restarted Redis lost them).
      void this.heartbeatNow();
    });
    this.#redis.on('error', (error: Error) => {
      this.#lastConnectionError = error;
      this.#logger.debug({ err: error }, 'redis connection error');
    });
    this.#redis.on('close', () => {
      this.#connected = false;
      this.#heartbeatSucceeded = false;
      this.#updateAvailability(this.#connectionLost());
    });
  }

  #watchSubscriber(): void {
    const subscriber = this.#subscriber;
    subscriber.on('ready', () => {
      subscriber.subscribe(this.keys.events).then(
        () => {
          this.#subscribed = true;
          this.#updateAvailability();
        },
        (error: unknown) => {
          this.#updateAvailability(new ClusterRegistryError('subscribe', this.keys.events, error));
          // Nothing else would subscribe again before the next reconnection (e.g. a SUBSCRIBE that
          // timed out while this process was busy starting): make one.
          if (!this.#closing) subscriber.disconnect(true);
        },
      );
    });
    subscriber.on('error', (error: Error) => {
      this.#lastConnectionError = error;
      this.#logger.debug({ err: error }, 'redis subscriber connection error');
    });
    subscriber.on('close', () => {
      if (!this.#subscribed) return;
      this.#subscribed = false;
      this.#updateAvailability(this.#connectionLost());
    });
    subscriber.on('message', (channel: string, message: string) => this.#onEvent(channel, message));
  }

  /**
   * One log line and one event per change of state, not per failed retry: a Redis outage of a
   * minute is two lines (unavailable, available again), whatever the number of reconnections.
   */
  #updateAvailability(cause?: ClusterRegistryError): void {
    if (this.#closing) return;
    const healthy = this.#connected && this.#subscribed && this.#heartbeatSucceeded;
    if (healthy && this.#availability !== 'ready') {
      const outageMs = this.#availability === 'unavailable' ? Date.now() - this.#unavailableSince : undefined;
      this.#availability = 'ready';
      this.#logger.info(
        { redis: this.#redisAddress, outageMs, streams: this.#streams.size, relays: this.#relays.size },
        outageMs === undefined ? 'cluster registry ready' : 'cluster registry ready again',
      );
      this.emit('ready');
    } else if (!healthy && cause && this.#availability !== 'unavailable') {
      this.#availability = 'unavailable';
      this.#unavailableSince = Date.now();
      this.#logger.warn(
        { err: cause, redis: this.#redisAddress },
        'cluster registry unavailable; retrying in the background',
      );
      this.emit('unavailable', cause);
    }
  }

  #connectionLost(): ClusterRegistryError {
    return new ClusterRegistryError(
      'connection to',
      this.#redisAddress,
      this.#lastConnectionError ?? 'connection closed',
    );
  }

  #onEvent(channel: string, message: string): void {
    if (channel !== this.keys.events || this.#closing) return;
    let data: unknown;
    try {
      data = JSON.parse(message);
    } catch {
      this.#logger.warn(
        { channel, message: message.slice(0, 200) },
        'dropped a cluster event that is not JSON',
      );
      return;
    }
    const result = ClusterEventSchema.safeParse(data);
    if (!result.success) {
      this.#logger.warn(
        { channel, message: message.slice(0, 200), problem: z.prettifyError(result.error) },
        'dropped an invalid cluster event',
      );
      return;
    }
    const event = result.data;
    if (event.type === 'stream-up') this.emit('streamup', event);
    else this.emit('streamdown', event);
  }

  // --- helpers ------------------------------------------------------------------------------------

  #streamLease(record: StreamRecord): Lease {
    return new Lease(this.#redis, {
      key: this.keys.stream(record.name),
      value: JSON.stringify(record),
      ttlMs: this.ttlMs,
      index: { key: this.keys.streams, member: record.name },
    });
  }

  #streamUp(record: StreamRecord): StreamUpMessage {
    return {
      v: LAYOUT_VERSION,
      type: 'stream-up',
      stream: record.name,
      nodeId: record.nodeId,
      claimId: record.claimId,
    };
  }

  #streamDown(record: StreamRecord, reason: string): StreamDownMessage {
    return {
      v: LAYOUT_VERSION,
      type: 'stream-down',
      stream: record.name,
      nodeId: record.nodeId,
      claimId: record.claimId,
      reason: reason.slice(0, 200) || 'unspecified',
    };
  }

  #announcement(message: StreamUpMessage | StreamDownMessage): Announcement {
    return { channel: this.keys.events, message: JSON.stringify(message) };
  }

  #assertOpen(operation: string, key: string): void {
    if (this.#closing) throw new ClusterRegistryError(operation, key, new Error('the registry is closed'));
  }

  async #command<T>(operation: string, key: string, run: () => Promise<T>): Promise<T> {
    try {
      return await run();
    } catch (error) {
      throw new ClusterRegistryError(operation, key, error);
    }
  }

  /**
   * The records listed in an index: prunes expired members (server time) and reads the live
   * ones in a single MGET. Records that expired since are dropped; unreadable ones are logged
   * and skipped, so one bad record never hides the others.
   */
  async #listIndexed<T>(
    operation: string,
    indexKey: string,
    memberSchema: z.ZodType<string>,
    recordSchema: z.ZodType<T>,
    record: { keyOf: (member: string) => string; idOf: (record: T) => string },
  ): Promise<T[]> {
    const listed = (await this.#command(operation, indexKey, () =>
      LIVE_MEMBERS.run(this.#redis, [indexKey], []),
    )) as string[];
    const members = listed.filter((member) => {
      if (memberSchema.safeParse(member).success) return true;
      this.#logger.warn({ key: indexKey, member: member.slice(0, 200) }, 'skipped an invalid index member');
      return false;
    });
    if (members.length === 0) return [];
    const keys = members.map(record.keyOf);
    const values = await this.#command(operation, indexKey, () => this.#redis.mget(keys));
    const records: T[] = [];
    values.forEach((value, index) => {
      if (value === null) return;
      const key = keys[index]!;
      const parsed = this.#parseValue(recordSchema, value, key);
      if (parsed === undefined) return;
      if (record.idOf(parsed) !== members[index]) {
        this.#logger.warn({ key, id: record.idOf(parsed) }, 'skipped a record stored under another key');
        return;
      }
      records.push(parsed);
    });
    return records.sort((x, y) => (record.idOf(x) < record.idOf(y) ? -1 : 1));
  }

  #parseValue<T>(schema: z.ZodType<T>, value: string, key: string): T | undefined {
    let data: unknown;
    try {
      data = JSON.parse(value);
    } catch {
      this.#logger.warn({ key, value: value.slice(0, 200) }, 'skipped a record that is not JSON');
      return undefined;
    }
    const result = schema.safeParse(data);
    if (!result.success) {
      this.#logger.warn(
        { key, value: value.slice(0, 200), problem: z.prettifyError(result.error) },
        'skipped an invalid record (corrupt, or written by another layout version)',
      );
      return undefined;
    }
    return result.data;
  }
}

/**
 * The record of whoever holds a lease we could not take. An unreadable one (corrupt, or written
 * by a newer layout version) still holds the key, so the claim fails; it cannot be answered
 * with a holder, so it is an error naming the key (someone has to look at it).
 */
function holderRecord<T>(schema: z.ZodType<T>, operation: string, key: string, value: string): T {
  let data: unknown;
  try {
    data = JSON.parse(value);
  } catch {
    throw new ClusterRegistryError(operation, key, 'the key is held by a value that is not JSON');
  }
  const result = schema.safeParse(data);
  if (!result.success) {
    throw new ClusterRegistryError(
      operation,
      key,
      `the key is held by an unreadable record (corrupt, or a newer layout version): ${z.prettifyError(result.error)}`,
    );
  }
  return result.data;
}

/** Records are checked before they are written: a bad one is the caller's bug, thrown at once. */
function validated<T>(schema: z.ZodType<T>, what: string, value: unknown): T {
  const result = schema.safeParse(value);
  if (!result.success) throw new TypeError(`invalid ${what}: ${z.prettifyError(result.error)}`);
  return result.data;
}

/** Exponential backoff with "equal jitter": half fixed, half random, capped. Never gives up. */
function reconnectDelayMs(attempt: number): number {
  const ceiling = Math.min(RECONNECT_MAX_MS, RECONNECT_BASE_MS * 2 ** Math.min(Math.max(attempt - 1, 0), 16));
  return Math.round(ceiling / 2 + (Math.random() * ceiling) / 2);
}

function isTimeout(error: unknown): boolean {
  return error instanceof Error && error.message === 'Command timed out';
}

/** ioredis' messages, said in the registry's terms. */
function describeRedisError(error: unknown): string {
  const message = error instanceof Error ? error.message : String(error);
  if (message.startsWith("Stream isn't writeable")) return 'Redis is not connected';
  if (message.startsWith('Reached the max retries per request limit'))
    return 'the connection to Redis was lost';
  if (isTimeout(error)) return 'Redis did not answer in time';
  if (message === 'Connection is closed.') return 'the connection to Redis is closed';
  return message;
}

/** host:port of a Redis URL, without credentials, for logs and errors. */
function redactedAddress(redisUrl: string): string {
  try {
    const url = new URL(redisUrl);
    return `${url.hostname}:${url.port || '6379'}`;
  } catch {
    return 'redis';
  }
}
