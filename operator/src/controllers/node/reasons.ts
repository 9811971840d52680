/** The conditions of a Node's status, and every reason the Node controller reports. */
import { SharedReason } from '../reasons.js';

export const NodeCondition = {
  /** Every media node of the group is ready and rolled out. */
  Ready: 'Ready',
} as const;

export const NodeReason = {
  /** Ready=True. */
  PodsReady: 'PodsReady',
  /** Ready=False: pods missing, not ready, or a rollout in progress. */
  PodsNotReady: 'PodsNotReady',
  /** Ready=False (and a Warning Event): the Node cannot be deployed. */
  InvalidSpec: SharedReason.InvalidSpec,
  CDNNotFound: SharedReason.CDNNotFound,
  /** spec.cdnRef names a CDN the operator cannot read. */
  CDNInvalid: 'CDNInvalid',
  ClusterSecretMissing: SharedReason.ClusterSecretMissing,
  InvalidName: SharedReason.InvalidName,
  UnsupportedExposure: 'UnsupportedExposure',
} as const;
