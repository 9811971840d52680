import type { Condition } from '../api/v1alpha1.js';

/** A condition as a reconciler computes it; the transition time is filled in by {@link mergeConditions}. */
export interface DesiredCondition {
  type: string;
  status: 'True' | 'False' | 'Unknown';
  reason: string;
  message: string;
}

/**
 * The new conditions list (meta.SetStatusCondition semantics): `lastTransitionTime` changes
 * only when a condition's status changes, so it says since when the state holds; every
 * condition carries the generation it was computed for. Conditions of other types are kept.
 */
export function mergeConditions(
  existing: readonly Condition[] | undefined,
  desired: readonly DesiredCondition[],
  observedGeneration: number | undefined,
  now: Date,
): Condition[] {
  const result: Condition[] = (existing ?? []).filter(
    (condition) => !desired.some((wanted) => wanted.type === condition.type),
  );
  for (const wanted of desired) {
    const previous = existing?.find((condition) => condition.type === wanted.type);
    result.push({
      type: wanted.type,
      status: wanted.status,
      reason: wanted.reason,
      // The API server caps messages at 32 KiB; ours are short, but a server error may not be.
      message: wanted.message.slice(0, 4096),
      lastTransitionTime:
        previous && previous.status === wanted.status ? previous.lastTransitionTime : rfc3339(now),
      ...(observedGeneration === undefined ? {} : { observedGeneration }),
    });
  }
  return result.sort((a, b) => a.type.localeCompare(b.type));
}

/** metav1.Time: RFC 3339 in seconds (the server drops fractions anyway). */
export const rfc3339 = (date: Date): string => `${date.toISOString().slice(0, 19)}Z`;
