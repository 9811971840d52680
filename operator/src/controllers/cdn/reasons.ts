/** The conditions of a CDN's status, and every reason the CDN controller reports (conditions and Events). */
import { SharedReason } from '../reasons.js';

export const CdnCondition = {
  /** Every media node of every region is ready. */
  Ready: 'Ready',
  /** Something keeps the CDN from running as specified (a missing Secret, Redis unreachable). */
  Degraded: 'Degraded',
} as const;

export const CdnReason = {
  /** Ready=True. */
  NodesReady: 'NodesReady',
  /** Ready=False: some media nodes are not ready yet. */
  NodesNotReady: 'NodesNotReady',
  /** Degraded=False. */
  AsExpected: 'AsExpected',
  /** Ready=False and Degraded=True: the configuration keeps the CDN from being deployed. */
  InvalidSpec: SharedReason.InvalidSpec,
  InvalidName: SharedReason.InvalidName,
  ClusterSecretInvalid: 'ClusterSecretInvalid',
  RedisSecretMissing: SharedReason.RedisSecretMissing,
  RedisSecretInvalid: SharedReason.RedisSecretInvalid,
  PublishTokenSecretMissing: SharedReason.PublishTokenSecretMissing,
  /** Ready=False and Degraded=True: the nodePort exposure's port blocks do not fit below 65536. */
  PortRangeExhausted: 'PortRangeExhausted',
  /** Degraded=True only: the load (streams, viewers) cannot be read from Redis. */
  RedisUnreachable: 'RedisUnreachable',
  /** Event: the cluster Secret was generated. */
  ClusterSecretCreated: 'ClusterSecretCreated',
  /** Event: an object of a region no longer in the spec was deleted. */
  Removed: 'Removed',
} as const;
