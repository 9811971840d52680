import { randomUUID } from 'node:crypto';
import { z } from 'zod';
import {
  ClusterKeys,
  DEFAULT_PREFIX,
  InternalUrlSchema,
  KeyPrefixSchema,
  LAYOUT_VERSION,
  type MediaKind,
  NodeIdSchema,
  type NodeLoad,
  type NodeRecord,
  NodeRecordSchema,
  type NodeRole,
  NodeRoleSchema,
  parseRedisUrl,
  RegionSchema,
  type RelayRecord,
  RelayRecordSchema,
  type StreamDownMessage,
  StreamNameSchema,
  type StreamRecord,
  StreamRecordSchema,
  type StreamUpMessage,
} from '../../contract/redis.js';
import { TypedEmitter } from '../../contract/runtime.js';
import type { Logger } from '../logger.js';
import { ClusterEvents } from './ClusterEvents.js';
import { ClusterRegistryError, describeRedisError } from './errors.js';
import { Lease } from './Lease.js';
import { LeaseKeeper, type LeaseLost } from './LeaseKeeper.js';
import { NodeHeartbeat, REGISTER_NODE, UNREGISTER_NODE } from './NodeHeartbeat.js';
import { RegistryConnection } from './RegistryConnection.js';
import { holderRecord, LIVE_MEMBERS, RecordReader, validated } from './records.js';

export { ClusterRegistryError, type LeaseLost };

const DEFAULT_HEARTBEAT_MS = 1000;
/**
 * A dead node and its claims vanish within this. Keep it ≤ 5 s: a publisher whose origin died
 * can publish the same name on another origin only once the dead claim has expired.
 */
const DEFAULT_TTL_MS = 4000;
/** Upper bound for any one command: a hung (not disconnected) Redis must not hang callers. */
const DEFAULT_COMMAND_TIMEOUT_MS = 1000;
/** close() gives up on cleaning Redis after this: whatever is left expires within the TTL. */
const CLOSE_BUDGET_MS = 1000;
const SHUTDOWN_REASON = 'node-shutdown';

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
    redisUrl: z.string().superRefine((url, context) => {
      try {
        parseRedisUrl(url);
      } catch (error) {
        context.addIssue({ code: 'custom', message: `redisUrl ${(error as Error).message}` });
      }
    }),
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
  /** redis://, rediss:// or redis+sentinel:// URL (credentials included, if any): see parseRedisUrl. */
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

/**
 * This node's membership in the cluster, over Redis (layout: keys.ts): it registers the node
 * with a TTL and keeps it alive (NodeHeartbeat), claims the streams it originates and the
 * regional relays it pulls (leases kept by LeaseKeeper, refreshed with every heartbeat), reads
 * what other nodes registered (RecordReader), and tells the rest of the node about streams going
 * up and down anywhere (ClusterEvents). Its connections and readiness: RegistryConnection.
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
  readonly #connection: RegistryConnection;
  readonly #events: ClusterEvents;
  readonly #records: RecordReader;
  readonly #leases: LeaseKeeper;
  readonly #heartbeat: NodeHeartbeat;
  readonly #logger: Logger;
  #closing: Promise<void> | undefined;

  private constructor(options: z.infer<typeof OptionsSchema>, logger: Logger) {
    super();
    this.self = options.self;
    this.keys = new ClusterKeys(options.prefix);
    this.heartbeatMs = options.heartbeatMs;
    this.ttlMs = options.ttlMs;
    this.#logger = logger.child({ component: 'cluster-registry' });
    this.#connection = new RegistryConnection({
      redisUrl: options.redisUrl,
      channel: this.keys.events,
      scripts: [REGISTER_NODE, UNREGISTER_NODE, LIVE_MEMBERS],
      commandTimeoutMs: options.commandTimeoutMs,
      clientName: options.self.id,
      logger: this.#logger,
    });
    this.#events = new ClusterEvents(this.keys.events, this.#logger);
    this.#records = new RecordReader(this.#connection, this.#logger);
    this.#leases = new LeaseKeeper(this.#events, this.#records, this.#logger);
    this.#heartbeat = new NodeHeartbeat({
      self: this.self,
      keys: this.keys,
      heartbeatMs: this.heartbeatMs,
      ttlMs: this.ttlMs,
      connection: this.#connection,
      leases: this.#leases,
      logger: this.#logger,
    });
    this.#connection.on('connected', () => {
      Lease.loadScripts(this.#connection.redis).catch(() => undefined);
      // Registers the node and every held lease again at once (a restarted Redis lost them).
      void this.#heartbeat.now();
    });
    this.#connection.on('ready', () => this.emit('ready'));
    this.#connection.on('unavailable', (error) => this.emit('unavailable', error));
    this.#connection.on('message', (channel, message) => this.#events.receive(channel, message));
    this.#events.on('streamup', (message) => this.emit('streamup', message));
    this.#events.on('streamdown', (message) => this.emit('streamdown', message));
    this.#leases.on('leaselost', (lost) => this.emit('leaselost', lost));
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
    return this.#connection.ready && !this.#closing;
  }

  /** Published in the node record from the next heartbeat on. */
  setLoad(load: NodeLoad): void {
    this.#heartbeat.setLoad(load);
  }

  /** Published in the node record from the next heartbeat on. */
  setDraining(draining: boolean): void {
    this.#heartbeat.setDraining(draining);
  }

  /**
   * Writes the node record and refreshes every held lease now. Resolves true on success; never
   * rejects (failures change `ready` and are logged on the state change).
   */
  heartbeatNow(): Promise<boolean> {
    if (this.#closing) return Promise.resolve(false);
    return this.#heartbeat.now();
  }

  // --- streams ------------------------------------------------------------------------------------

  /**
   * Claims `name` CDN-wide for this node (its origin) and announces stream-up. Fails (no throw)
   * when another node holds it, returning that holder. With `replaces`, the claim of that id is
   * taken over (its holder was found dead: see ClusterMember.claim) instead of waited out for
   * its TTL; the record and the announcement say which claim it replaced. Throws
   * ClusterRegistryError if Redis is unreachable.
   */
  async claimStream(
    claim: { name: string; kinds: MediaKind[] },
    options: { replaces?: string } = {},
  ): Promise<StreamClaimResult> {
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
      ...(options.replaces ? { replaces: options.replaces } : {}),
    });
    const lease = new Lease(this.#connection.redis, {
      key,
      value: JSON.stringify(record),
      ttlMs: this.ttlMs,
      index: { key: this.keys.streams, member: record.name },
    });
    const announce = this.#events.up(record);
    const result = await this.#connection.command('claimStream', key, () =>
      options.replaces ? lease.takeOver(options.replaces, announce) : lease.acquire(announce),
    );
    if (!result.acquired) {
      return { claimed: false, holder: holderRecord(StreamRecordSchema, 'claimStream', key, result.holder) };
    }
    if (this.#closing) {
      // close() already released what it knew of: this claim would otherwise linger for a TTL.
      await lease.release(this.#events.down(record, SHUTDOWN_REASON)).catch(() => undefined);
      throw new ClusterRegistryError('claimStream', key, new Error('the registry closed during the claim'));
    }
    this.#leases.holdStream({ lease, record });
    this.#logger.info(
      { stream: record.name, claimId: record.claimId, replaces: options.replaces },
      options.replaces ? 'stream claim taken over from a dead holder' : 'stream claimed',
    );
    return { claimed: true, claimId: record.claimId, record };
  }

  /** The claim this node holds on `name`, if any (what GET /internal/v1/claims answers). */
  heldStream(name: string): StreamRecord | undefined {
    return this.#leases.stream(name)?.record;
  }

  /**
   * Releases a claim this node holds (compare-and-delete) and announces stream-down. False if
   * this node did not hold it (any more). Even when this throws (Redis unreachable), the claim
   * is no longer refreshed and expires within the TTL.
   */
  async releaseStream(name: string, reason: string): Promise<boolean> {
    // Forgotten before the release is sent: a heartbeat starting now will not refresh it, and one
    // already started sent its refresh first (same connection, in order), so nothing resurrects it.
    const held = this.#leases.dropStream(name);
    if (!held) return false;
    const released = await this.#connection.command('releaseStream', held.lease.key, () =>
      held.lease.release(this.#events.down(held.record, reason)),
    );
    if (released) this.#logger.info({ stream: name, reason }, 'stream released');
    else this.#logger.warn({ stream: name, reason }, 'stream claim was no longer ours at release');
    return released;
  }

  /** The live claim on `name`, or undefined (not live, or unreadable: logged). */
  lookupStream(name: string): Promise<StreamRecord | undefined> {
    return this.#records.get('lookupStream', this.keys.stream(name), StreamRecordSchema);
  }

  /** Every live stream of the cluster, by name. */
  listStreams(): Promise<StreamRecord[]> {
    return this.#records.listIndexed('listStreams', this.keys.streams, StreamNameSchema, StreamRecordSchema, {
      keyOf: (name) => this.keys.stream(name),
      idOf: (record) => record.name,
    });
  }

  // --- nodes --------------------------------------------------------------------------------------

  /** The live node `id`, or undefined (gone: its record expired or it unregistered). */
  lookupNode(id: string): Promise<NodeRecord | undefined> {
    return this.#records.get('lookupNode', this.keys.node(id), NodeRecordSchema);
  }

  /** Live nodes, by id; `role` matches exactly (pass ['edge', 'all'] for "nodes serving viewers"). */
  async listNodes(
    filter: { role?: NodeRole | readonly NodeRole[]; region?: string } = {},
  ): Promise<NodeRecord[]> {
    const nodes = await this.#records.listIndexed(
      'listNodes',
      this.keys.nodes,
      NodeIdSchema,
      NodeRecordSchema,
      {
        keyOf: (id) => this.keys.node(id),
        idOf: (record) => record.id,
      },
    );
    const roles = filter.role === undefined ? undefined : ([] as NodeRole[]).concat(filter.role);
    return nodes.filter(
      (node) =>
        (roles === undefined || roles.includes(node.role)) &&
        (filter.region === undefined || node.region === filter.region),
    );
  }

  /**
   * Whether node `id` says it is draining (its record, as of its last heartbeat); false when it
   * has no record (gone, or Redis restarted empty and it has not re-registered yet).
   */
  async nodeDraining(id: string): Promise<boolean> {
    return (await this.lookupNode(id))?.draining === true;
  }

  // --- regional relays ----------------------------------------------------------------------------

  /**
   * Claims being the edge of `region` that pulls `name` from its origin for the region's edges;
   * with `replaces`, takes the lease over from the edge holding it under that claim id (found
   * dead) instead of waiting out its TTL.
   */
  async claimRelay(
    region: string,
    name: string,
    options: { replaces?: string } = {},
  ): Promise<RelayClaimResult> {
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
    const lease = new Lease(this.#connection.redis, {
      key,
      value: JSON.stringify(record),
      ttlMs: this.ttlMs,
    });
    const result = await this.#connection.command('claimRelay', key, () =>
      options.replaces ? lease.takeOver(options.replaces) : lease.acquire(),
    );
    if (!result.acquired) {
      return { acquired: false, holder: holderRecord(RelayRecordSchema, 'claimRelay', key, result.holder) };
    }
    if (this.#closing) {
      await lease.release().catch(() => undefined);
      throw new ClusterRegistryError('claimRelay', key, new Error('the registry closed during the claim'));
    }
    this.#leases.holdRelay({ lease, record });
    this.#logger.info({ stream: name, region, claimId: record.claimId }, 'relay lease claimed');
    return { acquired: true, claimId: record.claimId, record };
  }

  /**
   * Releases a relay lease this node holds (compare-and-delete); a no-op if it holds none. A
   * lease found taken by another edge meanwhile is left alone (and logged).
   */
  async releaseRelay(region: string, name: string): Promise<void> {
    const key = this.keys.relay(region, name);
    const held = this.#leases.dropRelay(key); // before sending: see releaseStream
    if (!held) return;
    const released = await this.#connection.command('releaseRelay', key, () => held.lease.release());
    if (!released) this.#logger.warn({ stream: name, region }, 'relay lease was no longer ours at release');
  }

  /** The edge relaying `name` for `region`, or undefined. */
  lookupRelay(region: string, name: string): Promise<RelayRecord | undefined> {
    return this.#records.get('lookupRelay', this.keys.relay(region, name), RelayRecordSchema);
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
    this.#connection.beginClose();
    this.#heartbeat.stop();
    const { streams, relays } = this.#leases.dropAll();
    let outOfBudget = false;
    const cleanup = (async () => {
      const results = await Promise.allSettled([
        ...streams.map((held) => held.lease.release(this.#events.down(held.record, SHUTDOWN_REASON))),
        ...relays.map((held) => held.lease.release()),
        this.#heartbeat.unregister(),
      ]);
      const failures = results.filter((result) => result.status === 'rejected');
      if (failures.length > 0 && !outOfBudget) {
        this.#logger.warn(
          { failed: failures.length, of: results.length, reason: describeRedisError(failures[0]!.reason) },
          'could not remove this node from Redis; its records expire within the TTL',
        );
      }
      await this.#connection.quit();
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
    this.#connection.disconnect();
    this.#logger.info('cluster registry closed');
  }

  #assertOpen(operation: string, key: string): void {
    if (this.#closing) throw new ClusterRegistryError(operation, key, new Error('the registry is closed'));
  }
}
