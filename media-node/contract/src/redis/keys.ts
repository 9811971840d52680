import { isIP } from 'node:net';
import { z } from 'zod';
import { AclPatternSchema } from '../acl/model.js';
import { RegionSchema, StreamNameSchema } from '../names.js';

/**
 * THE Redis layout of an rtccdn cluster: the contract shared by media nodes (origins, edges,
 * transcoders) and the Kubernetes operator. Every key and channel name is built here and only
 * here; every value is described by a zod schema below. docs/redis-layout.md explains the
 * semantics (TTLs, failure behaviour) for readers in other languages.
 *
 *   {prefix} defaults to "rtccdn:"; times are milliseconds since the Unix epoch.
 *
 *   Key / channel                 Type     TTL        Value                                   Written by
 *   ----------------------------  -------  ---------  --------------------------------------  ---------------------
 *   {prefix}node:{nodeId}         string   ttl (PX)   JSON NodeRecord                         the node, every heartbeat
 *   {prefix}nodes                 ZSET     none       member nodeId, score = expiry (Redis    the node, every heartbeat
 *                                                     server time); stale members pruned
 *                                                     by readers
 *   {prefix}stream:{name}         string   ttl (PX)   JSON StreamRecord: the stream's claim,  its origin (SET NX PX;
 *                                                     unique CDN-wide                         refresh/release by holder)
 *   {prefix}streams               ZSET     none       member stream name, score = expiry      its origin, with the claim
 *   {prefix}relay:{region}:{name} string   ttl (PX)   JSON RelayRecord: which edge of         that edge (SET NX PX;
 *                                                     {region} pulls {name} from the origin   refresh/release by holder)
 *   {prefix}acl:stream:{pattern}  string   none       JSON AclRecord (acl/model.ts): one       the ACL REST API (origins,
 *                                                     stream's or prefix's keys, as keyed      standalone) or the operator
 *                                                     hashes — never the keys               (StreamACL), via AclStore
 *   {prefix}acl:patterns          SET      none       every pattern that has an AclRecord     with the record (one script)
 *   {prefix}acl:version           string   none       integer, +1 on every ACL change         with the record (one script)
 *   {prefix}acl:epoch             string   none       random id, set with the first ACL       with the record (one script);
 *                                                     write: a new epoch = the store was      edges lock ACLs they knew
 *                                                     reset (Redis lost its data)             until they are rewritten
 *   {prefix}acl:synced            string   none       the epoch for which every StreamACL has   the operator, after a full
 *                                                     been written; edges of an operator-      write of its StreamACLs
 *                                                     managed CDN admit nobody until it
 *                                                     equals {prefix}acl:epoch
 *   {prefix}acl:head              string   none       random id of the last ACL write         with the record (one script)
 *   {prefix}acl:events            pub/sub  —          JSON AclChangeMessage {version,         with the record (one script);
 *                                                     pattern, op, id, prev}                  edges resync on a gap
 *   {prefix}events                pub/sub  —          JSON ClusterEvent (stream-up/-down)     origins, atomically with
 *                                                                                             their claim changes
 *
 * Versioning: every record and message carries `v` (LAYOUT_VERSION). Adding an optional field
 * is compatible and keeps the version; anything else bumps it, and readers skip (with a warning)
 * records of a version they do not know rather than misreading them. The version is not part
 * of the key names on purpose: stream-name uniqueness must hold across a rolling upgrade, so
 * old and new nodes have to contend for the same keys.
 *
 * Key components cannot contain ":" (see the schemas), so a key parses back unambiguously and
 * keys of different kinds never collide. With Redis Cluster, use a hash-tagged prefix such as
 * "{rtccdn}:" so that a record and its index (written together by one script) share a slot.
 */

export const LAYOUT_VERSION = 1;
export const DEFAULT_PREFIX = 'rtccdn:';

/** The part of the key space for stream access control (AclStore writes it, edges read it). */
export const ACL_NAMESPACE = 'acl:';

// --- key components -------------------------------------------------------------------------------

/** Superset of the REDIS_PREFIX the media node accepts, plus "{}" for Redis Cluster hash tags. */
export const KeyPrefixSchema = z
  .string()
  .regex(/^[A-Za-z0-9:._{}-]{0,64}$/, 'key prefix must be up to 64 characters of [A-Za-z0-9:._{}-]');

/** Pod names and hostnames fit; no ":" so that keys parse back. */
export const NodeIdSchema = z
  .string()
  .regex(/^[A-Za-z0-9._-]{1,128}$/, 'node id must be 1-128 characters of [A-Za-z0-9._-]');

export { RegionSchema, StreamNameSchema };

export const NODE_ROLES = ['origin', 'edge', 'transcoder', 'all'] as const;
export const NodeRoleSchema = z.enum(NODE_ROLES);
export type NodeRole = z.infer<typeof NodeRoleSchema>;

/**
 * Node-to-node HTTP base URL (the internal API): `http(s)://<IP address>:<port>` and nothing
 * else, e.g. http://10.1.2.3:8081 or http://[fd00::3]:8081. Whoever can write the registry must
 * not be able to point nodes' signed calls at a host name (DNS), a path, or credentials.
 */
export const InternalUrlSchema = z
  .string()
  .max(64)
  .regex(
    /^https?:\/\/(\d{1,3}(\.\d{1,3}){3}|\[[0-9A-Fa-f:.]{2,45}\]):\d{1,5}$/,
    'internalUrl must be http(s)://<IP address>:<port>',
  )
  .refine((value) => {
    try {
      const url = new URL(value);
      const host = url.hostname.replace(/^\[|\]$/g, '');
      return isIP(host) !== 0 && url.pathname === '/' && url.username === '' && url.password === '';
    } catch {
      return false;
    }
  }, 'internalUrl must be http(s)://<IP address>:<port>');

/** Random per claim: tells this holder's claim apart from an earlier or later one of the same node. */
export const ClaimIdSchema = z.string().min(1).max(64);

const epochMs = z.number().int().nonnegative();

// --- records --------------------------------------------------------------------------------------

export const NodeLoadSchema = z.object({
  /** WHEP sessions on the node. */
  viewers: z.number().int().nonnegative(),
  /** Streams the node serves (published or relayed). */
  streams: z.number().int().nonnegative(),
  /** Media sent to viewers and relays, bits per second. */
  egressBps: z.number().nonnegative(),
  /** CPU used, as a fraction of the node's cores (0..1). */
  cpu: z.number().min(0).max(1),
});
export type NodeLoad = z.infer<typeof NodeLoadSchema>;

export const NodeRecordSchema = z.object({
  v: z.literal(LAYOUT_VERSION),
  id: NodeIdSchema,
  role: NodeRoleSchema,
  region: RegionSchema,
  internalUrl: InternalUrlSchema,
  startedAt: epochMs,
  load: NodeLoadSchema,
  /** Shutting down: finishes its sessions but should get no new ones. */
  draining: z.boolean(),
  /** The writer's clock; informational only (liveness is the key's TTL). */
  updatedAt: epochMs,
});
export type NodeRecord = z.infer<typeof NodeRecordSchema>;

export const MediaKindSchema = z.enum(['audio', 'video']);
export type MediaKind = z.infer<typeof MediaKindSchema>;

export const StreamRecordSchema = z.object({
  v: z.literal(LAYOUT_VERSION),
  name: StreamNameSchema,
  /** The origin holding the publisher. */
  nodeId: NodeIdSchema,
  region: RegionSchema,
  internalUrl: InternalUrlSchema,
  claimId: ClaimIdSchema,
  startedAt: epochMs,
  kinds: z.array(MediaKindSchema).max(2),
  /**
   * The claim this one took over from a holder found dead (its internal API refused the
   * connection, or it no longer held the claim) before its TTL ran out: the same stream moved,
   * so edges keep its viewers and relink.
   */
  replaces: ClaimIdSchema.optional(),
});
export type StreamRecord = z.infer<typeof StreamRecordSchema>;

export const RelayRecordSchema = z.object({
  v: z.literal(LAYOUT_VERSION),
  name: StreamNameSchema,
  region: RegionSchema,
  /** The edge that pulls the stream from its origin for the whole region. */
  nodeId: NodeIdSchema,
  internalUrl: InternalUrlSchema,
  claimId: ClaimIdSchema,
  startedAt: epochMs,
});
export type RelayRecord = z.infer<typeof RelayRecordSchema>;

// --- pub/sub messages ({prefix}events) ------------------------------------------------------------

/**
 * Notifications, not state: pub/sub delivers at most once and only to connected subscribers,
 * so a reader that needs the truth looks the claim up ({prefix}stream:{name}).
 */
export const StreamUpMessageSchema = z.object({
  v: z.literal(LAYOUT_VERSION),
  type: z.literal('stream-up'),
  stream: StreamNameSchema,
  nodeId: NodeIdSchema,
  claimId: ClaimIdSchema,
  /** As in StreamRecord: the dead holder's claim this one took over. */
  replaces: ClaimIdSchema.optional(),
});
export type StreamUpMessage = z.infer<typeof StreamUpMessageSchema>;

export const StreamDownMessageSchema = z.object({
  v: z.literal(LAYOUT_VERSION),
  type: z.literal('stream-down'),
  stream: StreamNameSchema,
  nodeId: NodeIdSchema,
  claimId: ClaimIdSchema,
  /** Why the origin let the stream go, e.g. "unpublished", "node-shutdown" (free text). */
  reason: z.string().min(1).max(200),
});
export type StreamDownMessage = z.infer<typeof StreamDownMessageSchema>;

export const ClusterEventSchema = z.discriminatedUnion('type', [
  StreamUpMessageSchema,
  StreamDownMessageSchema,
]);
export type ClusterEvent = z.infer<typeof ClusterEventSchema>;

/**
 * Published with every ACL change. `version` is {prefix}acl:version after the change: a reader
 * that sees a version other than its last + 1 has missed a message and re-reads everything.
 */
export const AclChangeMessageSchema = z.object({
  v: z.literal(LAYOUT_VERSION),
  version: z.number().int().positive(),
  /** {prefix}acl:epoch: a reader holding another epoch knows the store was reset. */
  epoch: z.string().min(1).max(64),
  pattern: AclPatternSchema,
  op: z.enum(['put', 'delete']),
  /** Writer's clock (ms) at the change: edges measure the revocation cut-off latency from it. */
  at: epochMs,
  /**
   * This write's random id, and the id of the write before it ({prefix}acl:head before the
   * change; '' if none): a reader applies a change only on top of the write it last saw. After
   * a Redis failover that lost writes, version numbers are handed out again for other changes;
   * the ids tell them apart.
   */
  id: z.string().min(1).max(64).optional(),
  prev: z.string().max(64).optional(),
});
export type AclChangeMessage = z.infer<typeof AclChangeMessageSchema>;

// --- key names ------------------------------------------------------------------------------------

export type ParsedKey =
  | { kind: 'node'; nodeId: string }
  | { kind: 'nodes' }
  | { kind: 'stream'; name: string }
  | { kind: 'streams' }
  | { kind: 'relay'; region: string; name: string }
  | { kind: 'acl'; rest: string };

/** Builds (and parses) every key and channel name of the layout under one prefix. */
export class ClusterKeys {
  readonly prefix: string;
  /** ZSET nodeId → expiry (ms, Redis server time). */
  readonly nodes: string;
  /** ZSET stream name → expiry (ms, Redis server time). */
  readonly streams: string;
  /** Pub/sub channel of ClusterEvent messages. */
  readonly events: string;
  /** Everything starting with this is stream access control. */
  readonly aclNamespace: string;
  /** SET of the patterns that have an ACL record. */
  readonly aclPatterns: string;
  /** Counter of ACL changes. */
  readonly aclVersion: string;
  /** Random id of this ACL store's lifetime (changes when Redis lost its data). */
  readonly aclEpoch: string;
  /** The epoch for which the operator has written every StreamACL (see AclStore.markSynced). */
  readonly aclSynced: string;
  /** Id of the last ACL write (see AclChangeMessage.id). */
  readonly aclHead: string;
  /** Pub/sub channel of AclChangeMessage. */
  readonly aclEvents: string;

  constructor(prefix: string = DEFAULT_PREFIX) {
    this.prefix = checked(KeyPrefixSchema, prefix, 'key prefix');
    this.nodes = `${prefix}nodes`;
    this.streams = `${prefix}streams`;
    this.events = `${prefix}events`;
    this.aclNamespace = `${prefix}${ACL_NAMESPACE}`;
    this.aclPatterns = `${this.aclNamespace}patterns`;
    this.aclVersion = `${this.aclNamespace}version`;
    this.aclEpoch = `${this.aclNamespace}epoch`;
    this.aclSynced = `${this.aclNamespace}synced`;
    this.aclHead = `${this.aclNamespace}head`;
    this.aclEvents = `${this.aclNamespace}events`;
  }

  /** The ACL record of an exact stream name or a prefix pattern ("sales-*"). */
  aclRecord(pattern: string): string {
    return `${this.aclNamespace}stream:${checked(AclPatternSchema, pattern, 'ACL pattern')}`;
  }

  node(nodeId: string): string {
    return `${this.prefix}node:${checked(NodeIdSchema, nodeId, 'node id')}`;
  }

  stream(name: string): string {
    return `${this.prefix}stream:${checked(StreamNameSchema, name, 'stream name')}`;
  }

  relay(region: string, name: string): string {
    return `${this.prefix}relay:${checked(RegionSchema, region, 'region')}:${checked(StreamNameSchema, name, 'stream name')}`;
  }

  /** The inverse of the builders; undefined for a key outside this layout. */
  parse(key: string): ParsedKey | undefined {
    if (!key.startsWith(this.prefix)) return undefined;
    const rest = key.slice(this.prefix.length);
    if (rest === 'nodes') return { kind: 'nodes' };
    if (rest === 'streams') return { kind: 'streams' };
    if (rest.startsWith(ACL_NAMESPACE)) return { kind: 'acl', rest: rest.slice(ACL_NAMESPACE.length) };
    const [kind, ...parts] = rest.split(':');
    if (kind === 'node' && parts.length === 1 && NodeIdSchema.safeParse(parts[0]).success) {
      return { kind: 'node', nodeId: parts[0]! };
    }
    if (kind === 'stream' && parts.length === 1 && StreamNameSchema.safeParse(parts[0]).success) {
      return { kind: 'stream', name: parts[0]! };
    }
    if (
      kind === 'relay' &&
      parts.length === 2 &&
      RegionSchema.safeParse(parts[0]).success &&
      StreamNameSchema.safeParse(parts[1]).success
    ) {
      return { kind: 'relay', region: parts[0]!, name: parts[1]! };
    }
    return undefined;
  }
}

/** Key components are validated where keys are built: a bad one is a caller's bug, not data. */
function checked(schema: z.ZodType<string>, value: string, what: string): string {
  const result = schema.safeParse(value);
  if (!result.success) {
    throw new TypeError(`invalid ${what} ${JSON.stringify(value)}: ${result.error.issues[0]!.message}`);
  }
  return result.data;
}
