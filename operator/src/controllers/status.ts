import type { KubeClient } from '../kube/client.js';
import { isNotFound } from '../kube/errors.js';
import type { EventSink, EventSubject } from '../kube/events.js';
import type { ResourceType } from '../kube/resources.js';
import { stableJson } from './shared.js';

/**
 * Writes `status` through the status subresource when it differs from `current.status`, and
 * returns whether it wrote. A merge patch replaces lists and merges maps, so top-level fields
 * that are gone (e.g. viewers while Redis is unreachable) are deleted explicitly with null.
 * An object deleted meanwhile is not an error: there is nothing left to report on.
 */
export async function writeStatus(
  client: KubeClient,
  type: ResourceType,
  current: { metadata: { name: string; namespace?: string | undefined }; status?: unknown },
  status: object,
): Promise<boolean> {
  const before = (current.status ?? {}) as Record<string, unknown>;
  if (stableJson(before) === stableJson(status)) return false;
  const patch: Record<string, unknown> = { ...status };
  for (const key of Object.keys(before)) if (!(key in status)) patch[key] = null;
  try {
    await client.patchStatus(type, current.metadata.namespace, current.metadata.name, patch);
  } catch (error) {
    if (isNotFound(error)) return false;
    throw error;
  }
  return true;
}

interface ConditionLike {
  type: string;
  status: string;
  reason?: string | undefined;
  message?: string | undefined;
}

/**
 * Events for condition transitions of `type`. With `problemStatus` (e.g. Degraded=True), turning
 * to it is a Warning, also the first time; otherwise only changes of an existing condition are
 * recorded, as Normal events (a CDN that starts with Ready=False is not news).
 */
export function recordTransition(
  events: EventSink,
  subject: EventSubject,
  before: readonly ConditionLike[] | undefined,
  after: readonly ConditionLike[],
  type: string,
  problemStatus?: 'True' | 'False',
): void {
  const previous = before?.find((condition) => condition.type === type);
  const next = after.find((condition) => condition.type === type);
  if (!next || previous?.status === next.status) return;
  const reason = next.reason ?? type;
  if (problemStatus !== undefined && next.status === problemStatus) {
    events.record(subject, 'Warning', reason, next.message ?? '');
  } else if (previous) {
    events.record(subject, 'Normal', reason, next.message ?? '');
  }
}
