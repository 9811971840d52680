/** The conditions of a Node's status, and every reason the Node controller reports. */
import { SharedReason } from '../reasons.js';

export const NodeCondition = {
  /** Every media node of the group is ready and rolled out. */
  Ready: 'Ready',
  /** Edges: the operator is replacing pods, one at a time, each drained first (rollout.ts). */
  RolloutInProgress: 'RolloutInProgress',
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
  /** exposure nodePort, and the Node has no spec.ports.podSlots. */
  PodSlotsMissing: 'PodSlotsMissing',
  /** More replicas than pod slots (nodePort): the extra pods are not run. */
  PodSlotsExhausted: 'PodSlotsExhausted',
  /** The apiserver refused a per-pod NodePort Service (port taken, outside the NodePort range). */
  RtcPortsUnavailable: 'RtcPortsUnavailable',
  /** Ready=False, from the pods: their image cannot be pulled. */
  ImagePullFailed: 'ImagePullFailed',
  /** Ready=False, from the pods: the media node keeps exiting (the message quotes why). */
  CrashLooping: 'CrashLooping',
  /** Ready=False, from the pods: a container cannot be created (a missing Secret or key). */
  ContainerConfigError: 'ContainerConfigError',
  /** Ready=False, from the pods: no Kubernetes node can take a pod (ports taken, resources). */
  Unschedulable: 'Unschedulable',
  /** RolloutInProgress=False: every pod runs the current revision. */
  RolloutComplete: 'RolloutComplete',
} as const;
