/**
 * Why a Node's media nodes are not running, read from its pods (a pure function): what a user
 * would otherwise dig out of `kubectl describe pod` and pod logs — an image that cannot be
 * pulled, a media node that keeps exiting (with its last words), a missing Secret, no room on
 * any Kubernetes node — becomes the Node's (and the CDN's) Ready reason.
 */
import type { PodObject } from '../../kube/objects.js';
import type { Problem } from '../shared.js';
import { NodeReason } from './reasons.js';

const WAITING_REASONS: Record<string, string> = {
  ErrImagePull: NodeReason.ImagePullFailed,
  ImagePullBackOff: NodeReason.ImagePullFailed,
  InvalidImageName: NodeReason.ImagePullFailed,
  ErrImageNeverPull: NodeReason.ImagePullFailed,
  CrashLoopBackOff: NodeReason.CrashLooping,
  CreateContainerConfigError: NodeReason.ContainerConfigError,
  CreateContainerError: NodeReason.ContainerConfigError,
  RunContainerError: NodeReason.ContainerConfigError,
};

/** Reasons a Node's Ready condition takes from its pods. */
export const POD_FAILURE_REASONS: ReadonlySet<string> = new Set([
  ...Object.values(WAITING_REASONS),
  NodeReason.Unschedulable,
]);

/** Long pod messages (log tails) are cut: a condition message is for one look. */
const MAX_MESSAGE = 400;

function clip(text: string): string {
  const oneLine = text.trim().replace(/\s*\n\s*/g, ' | ');
  return oneLine.length > MAX_MESSAGE ? `${oneLine.slice(0, MAX_MESSAGE - 1)}…` : oneLine;
}

/** The first failure among the pods (by name, so that it does not flap), if any. */
export function podFailure(pods: readonly PodObject[]): Problem | undefined {
  for (const pod of [...pods].sort((a, b) => a.metadata.name.localeCompare(b.metadata.name))) {
    if (pod.metadata.deletionTimestamp) continue;
    const name = pod.metadata.name;
    const scheduled = pod.status?.conditions?.find((condition) => condition.type === 'PodScheduled');
    if (scheduled?.status === 'False' && scheduled.reason === 'Unschedulable') {
      return {
        reason: NodeReason.Unschedulable,
        message: clip(`pod ${name} cannot be scheduled: ${scheduled.message ?? 'no node fits'}`),
      };
    }
    for (const container of pod.status?.containerStatuses ?? []) {
      const waiting = container.state?.waiting;
      const reason = waiting?.reason === undefined ? undefined : WAITING_REASONS[waiting.reason];
      if (waiting === undefined || reason === undefined) continue;
      const last = container.lastState?.terminated;
      const detail =
        reason === NodeReason.CrashLooping && last
          ? `exited with code ${last.exitCode}${last.message ? `: ${last.message}` : ''}`
          : (waiting.message ?? waiting.reason);
      return { reason, message: clip(`pod ${name}: ${waiting.reason}: ${detail}`) };
    }
  }
  return undefined;
}
