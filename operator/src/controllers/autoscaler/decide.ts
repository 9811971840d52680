/**
 * The edge autoscaler's decision, as a pure function of what it observed (no I/O, no clock):
 *
 *   desired = clamp(ceil(viewers / targetViewersPerEdge), minReplicas, maxReplicas)
 *
 * - Up: at once (viewers are arriving now; an edge takes seconds to start).
 * - Down: only once spec.replicas has not changed for the stabilization window (so a dip in
 *   viewers right after a scale-up does not remove what was just added), and only by draining:
 *   the pods that will go (the highest ordinals, which a StatefulSet removes first) are told
 *   to take no new viewers, and replicas drop past a pod only once it has no viewers left or
 *   the drain grace period has passed. A drain is one batch: if viewers drop further meanwhile,
 *   the next batch waits for the window again; if they come back, the drain shrinks or is
 *   cancelled.
 * - Bounds: a count outside [min, max] (the CDN's bounds changed) is brought inside at once,
 *   like an HPA does, without draining: lowering maxReplicas is an explicit order.
 * - Unknown viewers (Redis unreachable): nothing but the bounds is enforced.
 */

export interface ScalePolicy {
  minReplicas: number;
  maxReplicas: number;
  targetViewersPerEdge: number;
  /** A drain starts only when spec.replicas has not changed for this long. */
  stabilizationMs: number;
  /** A draining pod is removed after this long even if viewers are still on it. */
  drainGraceMs: number;
}

export interface ScalerState {
  /** When spec.replicas last changed (ms). */
  lastScaleTime: number;
  /** A drain in progress: pods with ordinal >= toReplicas are draining since `since` (ms). */
  drain?: { toReplicas: number; since: number } | undefined;
}

export interface ScaleInput {
  policy: ScalePolicy;
  /** spec.replicas now. */
  replicas: number;
  /** Viewers on the region's edges; undefined when unknown. */
  viewers: number | undefined;
  /** Viewers per pod ordinal (pods with a live record); undefined when unknown. */
  podViewers: ReadonlyMap<number, number> | undefined;
  state: ScalerState;
  now: number;
}

export type ScaleReason =
  | 'steady'
  | 'scale-up'
  | 'bounds'
  | 'stabilizing'
  | 'drain-started'
  | 'draining'
  | 'drain-cancelled'
  | 'scale-down';

export interface ScaleDecision {
  /** The recommendation: what the viewers call for. */
  desired: number;
  /** spec.replicas to have now. */
  replicas: number;
  state: ScalerState;
  /** Ordinals that must be draining now (the rest must not be). */
  draining: number[];
  reason: ScaleReason;
}

export function recommendedReplicas(viewers: number, policy: ScalePolicy): number {
  return clamp(Math.ceil(viewers / policy.targetViewersPerEdge), policy);
}

function clamp(replicas: number, policy: ScalePolicy): number {
  return Math.min(policy.maxReplicas, Math.max(policy.minReplicas, replicas));
}

const range = (from: number, to: number): number[] =>
  Array.from({ length: Math.max(0, to - from) }, (_, index) => from + index);

export function decideScale(input: ScaleInput): ScaleDecision {
  const { policy, replicas: current, now, state } = input;
  const desired =
    input.viewers === undefined ? clamp(current, policy) : recommendedReplicas(input.viewers, policy);
  const steady = (
    reason: ScaleReason,
    next: ScalerState = { lastScaleTime: state.lastScaleTime },
  ): ScaleDecision => ({
    desired,
    replicas: current,
    state: next,
    draining: next.drain ? range(next.drain.toReplicas, current) : [],
    reason,
  });

  if (current < policy.minReplicas || current > policy.maxReplicas) {
    const replicas =
      current < policy.minReplicas ? Math.max(desired, policy.minReplicas) : policy.maxReplicas;
    return { desired, replicas, state: { lastScaleTime: now }, draining: [], reason: 'bounds' };
  }
  if (desired > current) {
    return { desired, replicas: desired, state: { lastScaleTime: now }, draining: [], reason: 'scale-up' };
  }
  if (desired === current) return steady(state.drain ? 'drain-cancelled' : 'steady');

  let drain = state.drain;
  // A drain planned against a count that changed behind our back (manual scale) is void.
  if (drain && drain.toReplicas >= current) drain = undefined;
  let started = false;
  if (!drain) {
    if (now - state.lastScaleTime < policy.stabilizationMs) return steady('stabilizing');
    drain = { toReplicas: desired, since: now };
    started = true;
  } else if (desired > drain.toReplicas) {
    // Viewers came back: drain fewer pods (the others are told to take viewers again).
    drain = { toReplicas: desired, since: drain.since };
  }

  // A pod counts as drained once it was asked in an earlier round (so it has refused new
  // viewers) and has none left, or once the grace period is over.
  const asked = now > drain.since;
  const graceOver = now - drain.since >= policy.drainGraceMs;
  const drained = (ordinal: number): boolean =>
    asked && (graceOver || (input.podViewers !== undefined && (input.podViewers.get(ordinal) ?? 0) === 0));
  let replicas = current;
  while (replicas > drain.toReplicas && drained(replicas - 1)) replicas--;

  if (replicas === drain.toReplicas) {
    return { desired, replicas, state: { lastScaleTime: now }, draining: [], reason: 'scale-down' };
  }
  if (replicas < current) {
    return {
      desired,
      replicas,
      state: { lastScaleTime: now, drain },
      draining: range(drain.toReplicas, replicas),
      reason: 'scale-down',
    };
  }
  return steady(started ? 'drain-started' : 'draining', { lastScaleTime: state.lastScaleTime, drain });
}
