import { z } from 'zod';
import { ConditionSchema } from '../api/v1alpha1.js';
import type { KubeClient } from '../kube/client.js';
import { isNotFound } from '../kube/errors.js';
import type { EventSink, EventSubject } from '../kube/events.js';
import { apiVersionOf, type ResourceType } from '../kube/resources.js';
import { mergeConditions } from '../runtime/conditions.js';
import type { InvalidObject } from '../runtime/TypedCache.js';
import { SharedReason } from './reasons.js';
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

/** The status of an object the operator cannot read: whatever is there, conditions if readable. */
const UnreadStatusSchema = z.looseObject({ conditions: z.array(ConditionSchema).optional() });

/**
 * The one way an object that does not parse with the operator's schema is reported (the CRD and
 * the operator are of different versions): `conditions` (e.g. Ready=False) with reason
 * InvalidSpec and where the object fails, the rest of the status kept, and a Warning Event when
 * that changed the status. The object is not reconciled until it changes.
 */
export async function reportInvalidSpec(
  dependencies: { client: KubeClient; events: EventSink; now: Date },
  type: ResourceType,
  invalid: InvalidObject,
  conditions: readonly { type: string; status: 'True' | 'False' }[],
): Promise<undefined> {
  const { client, events, now } = dependencies;
  const message = `the operator cannot read this ${type.kind}: ${invalid.problem}`;
  const current = UnreadStatusSchema.safeParse(invalid.object['status']);
  const existing = current.success ? current.data : {};
  const generation = invalid.metadata.generation;
  const status = {
    ...existing,
    ...(generation === undefined ? {} : { observedGeneration: generation }),
    conditions: mergeConditions(
      existing.conditions,
      conditions.map((condition) => ({ ...condition, reason: SharedReason.InvalidSpec, message })),
      generation,
      now,
    ),
  };
  if (
    await writeStatus(client, type, { metadata: invalid.metadata, status: invalid.object['status'] }, status)
  ) {
    const subject = { apiVersion: apiVersionOf(type), kind: type.kind, metadata: invalid.metadata };
    events.record(subject, 'Warning', SharedReason.InvalidSpec, message);
  }
  return undefined;
}
