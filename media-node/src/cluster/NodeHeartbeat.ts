import { z } from 'zod';
import type { Logger } from '../logger.js';
import { ClusterRegistryError } from './errors.js';
import { type ClusterKeys, LAYOUT_VERSION, type NodeLoad, NodeLoadSchema, type NodeRecord } from './keys.js';
import { LUA_SERVER_EXPIRY, RedisScript } from './Lease.js';
import type { LeaseKeeper } from './LeaseKeeper.js';
import type { RegistryConnection } from './RegistryConnection.js';

// KEYS[1] node key, KEYS[2] nodes ZSET; ARGV[1] record, ARGV[2] ttl ms, ARGV[3] node id.
export const REGISTER_NODE = new RedisScript(
  'node-register',
  `${LUA_SERVER_EXPIRY}
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
redis.call('ZADD', KEYS[2], expiry(ARGV[2]), ARGV[3])
return 1
`,
);

// KEYS[1] node key, KEYS[2] nodes ZSET; ARGV[1] node id.
export const UNREGISTER_NODE = new RedisScript(
  'node-unregister',
  `
redis.call('DEL', KEYS[1])
redis.call('ZREM', KEYS[2], ARGV[1])
return 1
`,
);

export interface NodeHeartbeatOptions {
  self: Pick<NodeRecord, 'id' | 'role' | 'region' | 'internalUrl'>;
  keys: ClusterKeys;
  heartbeatMs: number;
  ttlMs: number;
  connection: RegistryConnection;
  leases: LeaseKeeper;
  logger: Logger;
}

/**
 * Keeps this node alive in the registry: every `heartbeatMs` it writes the node record (its load
 * and draining flag) with a TTL and refreshes every lease the node holds, in one go; the result
 * decides the registry's readiness. A dead node (no heartbeat) vanishes within the TTL.
 */
export class NodeHeartbeat {
  readonly #options: NodeHeartbeatOptions;
  readonly #startedAt = Date.now();
  readonly #timer: NodeJS.Timeout;
  #load: NodeLoad = { viewers: 0, streams: 0, egressBps: 0, cpu: 0 };
  #draining = false;
  #inFlight: Promise<boolean> | undefined;
  #followUp: Promise<boolean> | undefined;
  #stopped = false;

  constructor(options: NodeHeartbeatOptions) {
    this.#options = options;
    this.#timer = setInterval(() => {
      // A heartbeat still in flight (slow or timing out) is not stacked upon.
      if (!this.#inFlight) void this.now();
    }, options.heartbeatMs);
    this.#timer.unref();
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
   * rejects (failures change readiness and are logged on the state change).
   */
  now(): Promise<boolean> {
    if (this.#stopped) return Promise.resolve(false);
    if (this.#inFlight) {
      // The one in flight may predate a reconnection or a new claim: run one more after it.
      this.#followUp ??= this.#inFlight.then(() => {
        this.#followUp = undefined;
        return this.now();
      });
      return this.#followUp;
    }
    this.#inFlight = this.#beat().finally(() => {
      this.#inFlight = undefined;
    });
    return this.#inFlight;
  }

  /** Stops beating (shutdown); what is registered expires within the TTL unless removed. */
  stop(): void {
    this.#stopped = true;
    clearInterval(this.#timer);
  }

  /** Removes the node record at once (shutdown). */
  unregister(): Promise<unknown> {
    const { connection, keys, self } = this.#options;
    return UNREGISTER_NODE.run(connection.redis, [keys.node(self.id), keys.nodes], [self.id]);
  }

  async #beat(): Promise<boolean> {
    const { connection, keys, self, ttlMs, leases, logger } = this.#options;
    const record: NodeRecord = {
      v: LAYOUT_VERSION,
      ...self,
      startedAt: this.#startedAt,
      load: this.#load,
      draining: this.#draining,
      updatedAt: Date.now(),
    };
    // Every command is sent in this synchronous block (ordering argument: see
    // ClusterRegistry.releaseStream).
    const nodeWrite = REGISTER_NODE.run(
      connection.redis,
      [keys.node(self.id), keys.nodes],
      [JSON.stringify(record), ttlMs, self.id],
    );
    const refreshed = leases.refreshAll(() => this.#stopped);
    connection.probeSubscriber();
    const [node, leaseFailure] = await Promise.allSettled([nodeWrite, refreshed]);
    if (this.#stopped) return false;
    const failure =
      node!.status === 'rejected'
        ? new ClusterRegistryError('heartbeat', keys.node(self.id), node!.reason)
        : leaseFailure!.status === 'fulfilled'
          ? leaseFailure!.value
          : undefined;
    if (failure) {
      // Logged by the state change; while already unavailable every failed beat is only debug.
      logger.debug({ err: failure }, 'heartbeat failed');
    }
    connection.heartbeatResult(failure);
    return failure === undefined;
  }
}
