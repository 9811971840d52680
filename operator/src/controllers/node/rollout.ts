/**
 * Rollouts of edges that drop no viewer, as pure functions. Edge StatefulSets use the OnDelete
 * update strategy: the StatefulSet controller creates pods at the new revision but replaces an
 * old one only once it is deleted — which the operator does, one pod at a time per Node (one
 * edge Node per region), after making sure the pod's viewers have somewhere to go:
 *
 * 1. capacity: the other ready, non-draining edges of the region have room for the pod's
 *    viewers (targetViewersPerEdge each), or a surge pod (one replica more than spec.replicas,
 *    created at the new revision) is ready;
 * 2. the pod is drained (it refuses new viewers and leaves the Services; its viewers keep
 *    playing), until it has no viewers left or the drain deadline passed (the edge itself then
 *    ends the remaining sessions with reason `node-draining`: players re-join elsewhere);
 * 3. the pod is deleted; the StatefulSet recreates it at the new revision; once it is ready,
 *    the next one. When no old pod is left, the surge pod is drained the same way and removed.
 *
 * The state lives in an annotation of the Node (rtccdn.io/rollout), so that a new leader
 * continues where the last one stopped.
 */
import { z } from 'zod';

export const ROLLOUT_ANNOTATION = 'rtccdn.io/rollout';

const RolloutStateSchema = z.object({
  /** The revision being rolled out (the StatefulSet's updateRevision). */
  revision: z.string(),
  /** Pods added for the rollout's duration (0 or 1). */
  surge: z.int().min(0).max(1),
  /** The pod being replaced: drained since `drainSince` (ms), deleted when `deleted`. */
  pod: z
    .object({ ordinal: z.int().min(0), drainSince: z.number(), deleted: z.boolean().optional() })
    .optional(),
});
export type RolloutState = z.output<typeof RolloutStateSchema>;

export function rolloutStateOf(annotations: Record<string, string> | undefined): RolloutState | undefined {
  const raw = annotations?.[ROLLOUT_ANNOTATION];
  if (raw === undefined || raw === '') return undefined;
  try {
    const parsed = RolloutStateSchema.safeParse(JSON.parse(raw));
    return parsed.success ? parsed.data : undefined;
  } catch {
    return undefined;
  }
}

export const encodeRolloutState = (state: RolloutState | undefined): string =>
  state === undefined ? '' : JSON.stringify(state);

export interface RolloutPod {
  ordinal: number;
  /** Its controller-revision-hash label. */
  revision: string | undefined;
  ready: boolean;
  /** It has a deletionTimestamp. */
  terminating: boolean;
}

export interface RolloutEdge {
  viewers: number;
  draining: boolean;
}

export interface RolloutInput {
  /** The StatefulSet's status.updateRevision; undefined before the StatefulSet controller set it. */
  updateRevision: string | undefined;
  /** The Node's replicas (spec.replicas, bounded by its pod slots): surge comes on top. */
  replicas: number;
  /** The most pods the Node may run (pod slots with exposure nodePort), or undefined. */
  maxPods?: number | undefined;
  pods: readonly RolloutPod[];
  /** The edges' records in Redis by ordinal; undefined when Redis cannot be read. */
  edges: ReadonlyMap<number, RolloutEdge> | undefined;
  /** Viewers one edge is meant to take (the region's targetViewersPerEdge). */
  viewersPerEdge: number;
  /** How long a drained pod is waited for (its edge's DRAIN_DEADLINE_MS plus a margin). */
  deadlineMs: number;
  /** The autoscaler is draining pods to scale down: the rollout waits for it to finish. */
  autoscalerDraining: boolean;
  state: RolloutState | undefined;
  now: number;
}

export type RolloutAction =
  | { type: 'drain'; ordinal: number }
  | { type: 'delete'; ordinal: number }
  | { type: 'none' };

export interface RolloutEvent {
  reason: string;
  message: string;
}

export interface RolloutPlan {
  state: RolloutState | undefined;
  /** Pods the StatefulSet runs beyond `replicas`. */
  surge: number;
  action: RolloutAction;
  events: RolloutEvent[];
  /** What the rollout is doing, for the Node's RolloutInProgress condition; undefined: none. */
  progress: { reason: string; message: string } | undefined;
}

export const RolloutReason = {
  /** A surge pod is added so that the pod to replace has somewhere to send its viewers. */
  RolloutSurge: 'RolloutSurge',
  /** The pod is drained before it is replaced. */
  PodDraining: 'PodDraining',
  /** The pod's viewers left (or its drain deadline passed): it is deleted, to be recreated. */
  PodDrained: 'PodDrained',
  /** Waiting for the recreated pod (or the surge pod) to be ready. */
  WaitingForPod: 'WaitingForPod',
  /** Waiting: no load from Redis, or the autoscaler is draining. */
  RolloutWaiting: 'RolloutWaiting',
  RolloutComplete: 'RolloutComplete',
} as const;

/** The next step of the rollout of one edge Node. */
export function planRollout(input: RolloutInput): RolloutPlan {
  const { updateRevision, replicas, pods, edges, now } = input;
  let state = input.state;
  const events: RolloutEvent[] = [];
  if (updateRevision === undefined) {
    return { state, surge: state?.surge ?? 0, action: { type: 'none' }, events, progress: undefined };
  }
  // A newer revision while rolling: continue with it (pods of both older ones are old).
  if (state && state.revision !== updateRevision) state = { ...state, revision: updateRevision };

  const byOrdinal = new Map(pods.map((pod) => [pod.ordinal, pod]));
  const wait = (reason: string, message: string): RolloutPlan => ({
    state,
    surge: state?.surge ?? 0,
    action: { type: 'none' },
    events,
    progress: { reason, message },
  });
  const viewersOf = (ordinal: number) => edges?.get(ordinal)?.viewers ?? 0;
  const drainOver = (pod: NonNullable<RolloutState['pod']>) =>
    (edges?.has(pod.ordinal) === true && viewersOf(pod.ordinal) === 0) ||
    now - pod.drainSince >= input.deadlineMs;

  // 1. A pod being replaced: wait for its drain, delete it, wait for its successor.
  if (state?.pod) {
    const { ordinal } = state.pod;
    const pod = byOrdinal.get(ordinal);
    const surgeOrdinal = replicas;
    if (!state.pod.deleted) {
      if (pod && pod.revision === updateRevision && ordinal !== surgeOrdinal) {
        // Replaced by someone else meanwhile (kubectl delete): nothing left to do for it.
        state = { ...state, pod: undefined };
      } else if (!pod) {
        state = { ...state, pod: { ...state.pod, deleted: true } };
      } else if (drainOver(state.pod)) {
        const viewers = viewersOf(ordinal);
        events.push({
          reason: RolloutReason.PodDrained,
          message:
            viewers === 0
              ? `pod ${ordinal} drained: no viewers left; ${ordinal === surgeOrdinal ? 'removing the surge pod' : 'deleting it to recreate it at the new revision'}`
              : `pod ${ordinal}: drain deadline passed with ${viewers} viewers (their sessions were ended, reason node-draining; players re-join elsewhere); ${ordinal === surgeOrdinal ? 'removing the surge pod' : 'deleting it'}`,
        });
        if (ordinal === surgeOrdinal) {
          // The surge pod goes by lowering the StatefulSet's replicas: the rollout is over.
          events.push({
            reason: RolloutReason.RolloutComplete,
            message: `every pod at revision ${updateRevision}`,
          });
          return { state: undefined, surge: 0, action: { type: 'none' }, events, progress: undefined };
        }
        state = { ...state, pod: { ...state.pod, deleted: true } };
        return {
          state,
          surge: state.surge,
          action: { type: 'delete', ordinal },
          events,
          progress: {
            reason: RolloutReason.PodDrained,
            message: `pod ${ordinal} deleted; waiting for its replacement`,
          },
        };
      } else {
        return wait(
          RolloutReason.PodDraining,
          `pod ${ordinal} draining: ${viewersOf(ordinal)} viewers left, deadline in ${Math.max(0, Math.ceil((state.pod.drainSince + input.deadlineMs - now) / 1000))} s`,
        );
      }
    }
    if (state.pod?.deleted) {
      const successor = byOrdinal.get(ordinal);
      if (!successor || successor.terminating || successor.revision !== updateRevision || !successor.ready) {
        if (successor && !successor.terminating && successor.revision !== updateRevision) {
          // Still the old pod (the delete has not been seen yet, or it failed): delete again.
          return {
            state,
            surge: state.surge,
            action: { type: 'delete', ordinal },
            events,
            progress: {
              reason: RolloutReason.WaitingForPod,
              message: `pod ${ordinal} deleted; waiting for its replacement`,
            },
          };
        }
        return wait(
          RolloutReason.WaitingForPod,
          `waiting for pod ${ordinal} at revision ${updateRevision} to be ready`,
        );
      }
      state = { ...state, pod: undefined };
    }
  }

  // 2. The next old pod, highest ordinal first (as a StatefulSet rolls).
  const old = pods
    .filter((pod) => pod.ordinal < replicas && !pod.terminating && pod.revision !== updateRevision)
    .sort((a, b) => b.ordinal - a.ordinal);
  const surgeOrdinal = replicas;
  if (old.length === 0) {
    if (!state) return { state, surge: 0, action: { type: 'none' }, events, progress: undefined };
    if (state.surge > 0 && byOrdinal.has(surgeOrdinal)) {
      // The surge pod may have viewers by now: drain it like the others before it goes.
      events.push({
        reason: RolloutReason.PodDraining,
        message: `draining the surge pod ${surgeOrdinal} before removing it`,
      });
      state = { ...state, pod: { ordinal: surgeOrdinal, drainSince: now } };
      return {
        state,
        surge: state.surge,
        action: { type: 'drain', ordinal: surgeOrdinal },
        events,
        progress: { reason: RolloutReason.PodDraining, message: `surge pod ${surgeOrdinal} draining` },
      };
    }
    events.push({
      reason: RolloutReason.RolloutComplete,
      message: `every pod at revision ${updateRevision}`,
    });
    return { state: undefined, surge: 0, action: { type: 'none' }, events, progress: undefined };
  }
  state ??= { revision: updateRevision, surge: 0 };
  if (input.autoscalerDraining) {
    return wait(RolloutReason.RolloutWaiting, 'waiting for the autoscaler to finish scaling down');
  }
  if (edges === undefined) {
    return wait(
      RolloutReason.RolloutWaiting,
      'edge load unknown (Redis): waiting to know where viewers can go',
    );
  }
  const candidate = old[0]!;
  const viewers = viewersOf(candidate.ordinal);
  const others = pods.filter(
    (pod) =>
      pod.ordinal !== candidate.ordinal &&
      pod.ready &&
      !pod.terminating &&
      edges.has(pod.ordinal) &&
      !edges.get(pod.ordinal)!.draining,
  );
  const room = others.reduce(
    (sum, pod) => sum + Math.max(0, input.viewersPerEdge - viewersOf(pod.ordinal)),
    0,
  );
  const surgePod = byOrdinal.get(surgeOrdinal);
  const surgeReady =
    state.surge > 0 && surgePod !== undefined && surgePod.ready && surgePod.revision === updateRevision;
  if (others.length === 0 || room < viewers) {
    if (state.surge === 0 && (input.maxPods === undefined || replicas + 1 <= input.maxPods)) {
      state = { ...state, surge: 1 };
      events.push({
        reason: RolloutReason.RolloutSurge,
        message: `adding surge pod ${surgeOrdinal}: the other edges have room for ${room} of pod ${candidate.ordinal}'s ${viewers} viewers`,
      });
      return wait(RolloutReason.RolloutSurge, `waiting for surge pod ${surgeOrdinal} to be ready`);
    }
    if (state.surge > 0 && !surgeReady) {
      return wait(RolloutReason.WaitingForPod, `waiting for surge pod ${surgeOrdinal} to be ready`);
    }
    // The surge pod is ready (or none can be added): as much room as there will be.
  }
  events.push({
    reason: RolloutReason.PodDraining,
    message: `draining pod ${candidate.ordinal} (${viewers} viewers) to replace it with revision ${updateRevision}; ${old.length - 1} more after it`,
  });
  state = { ...state, pod: { ordinal: candidate.ordinal, drainSince: now } };
  return {
    state,
    surge: state.surge,
    action: { type: 'drain', ordinal: candidate.ordinal },
    events,
    progress: {
      reason: RolloutReason.PodDraining,
      message: `pod ${candidate.ordinal} draining (${old.length} at an old revision)`,
    },
  };
}
