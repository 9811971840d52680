import { describe, expect, it } from '@jest/globals';
import {
  encodeRolloutState,
  planRollout,
  type RolloutEdge,
  type RolloutInput,
  type RolloutPod,
  rolloutStateOf,
} from '../../../operator/src/controllers/node/rollout.js';

const NEW = 'rev-new';
const OLD = 'rev-old';

function input(overrides: Partial<RolloutInput> & { pods: RolloutPod[] }): RolloutInput {
  return {
    updateRevision: NEW,
    replicas: overrides.pods.filter((pod) => pod.ordinal < 100).length,
    edges: new Map(overrides.pods.map((pod) => [pod.ordinal, { viewers: 0, draining: false }])),
    viewersPerEdge: 100,
    deadlineMs: 60_000,
    autoscalerDraining: false,
    state: undefined,
    now: 1_000_000,
    ...overrides,
  };
}

const pod = (ordinal: number, revision = OLD, ready = true): RolloutPod => ({
  ordinal,
  revision,
  ready,
  terminating: false,
});

describe('planRollout (edges replaced one at a time, drained first)', () => {
  it('does nothing when every pod is at the update revision', () => {
    const plan = planRollout(input({ pods: [pod(0, NEW), pod(1, NEW)] }));
    expect(plan).toMatchObject({ state: undefined, surge: 0, action: { type: 'none' }, events: [] });
  });

  it('drains the highest old pod first when the others have room for its viewers', () => {
    const edges = new Map<number, RolloutEdge>([
      [0, { viewers: 30, draining: false }],
      [1, { viewers: 40, draining: false }],
      [2, { viewers: 50, draining: false }],
    ]);
    const plan = planRollout(input({ pods: [pod(0), pod(1), pod(2)], edges }));
    expect(plan.action).toEqual({ type: 'drain', ordinal: 2 });
    expect(plan.surge).toBe(0);
    expect(plan.state).toEqual({ revision: NEW, surge: 0, pod: { ordinal: 2, drainSince: 1_000_000 } });
    expect(plan.events.map((event) => event.reason)).toEqual(['PodDraining']);
  });

  it('adds a surge pod when the others have no room, and drains only once it is ready', () => {
    const edges = new Map<number, RolloutEdge>([[0, { viewers: 80, draining: false }]]);
    const first = planRollout(input({ pods: [pod(0)], edges }));
    expect(first.action).toEqual({ type: 'none' });
    expect(first.surge).toBe(1);
    expect(first.events.map((event) => event.reason)).toEqual(['RolloutSurge']);
    // The surge pod (ordinal 1 = replicas) exists but is not ready: wait.
    const pending = planRollout(
      input({ pods: [pod(0), pod(1, NEW, false)], replicas: 1, edges, state: first.state }),
    );
    expect(pending.action).toEqual({ type: 'none' });
    expect(pending.progress?.reason).toBe('WaitingForPod');
    // Ready: pod 0 is drained.
    const withSurge = new Map(edges).set(1, { viewers: 0, draining: false });
    const drain = planRollout(
      input({ pods: [pod(0), pod(1, NEW)], replicas: 1, edges: withSurge, state: first.state }),
    );
    expect(drain.action).toEqual({ type: 'drain', ordinal: 0 });
    expect(drain.surge).toBe(1);
  });

  it('does not surge past the pod slots: drains anyway once nothing more can be had', () => {
    const edges = new Map<number, RolloutEdge>([[0, { viewers: 80, draining: false }]]);
    const plan = planRollout(input({ pods: [pod(0)], edges, maxPods: 1 }));
    expect(plan.surge).toBe(0);
    expect(plan.action).toEqual({ type: 'drain', ordinal: 0 });
  });

  it('waits for the drain, deletes the pod once empty or at the deadline, then waits for its successor', () => {
    const state = { revision: NEW, surge: 0, pod: { ordinal: 1, drainSince: 1_000_000 } };
    const pods = [pod(0), pod(1)];
    const busy = new Map<number, RolloutEdge>([
      [0, { viewers: 0, draining: false }],
      [1, { viewers: 5, draining: true }],
    ]);
    const waiting = planRollout(input({ pods, edges: busy, state, now: 1_010_000 }));
    expect(waiting.action).toEqual({ type: 'none' });
    expect(waiting.progress).toEqual({
      reason: 'PodDraining',
      message: 'pod 1 draining: 5 viewers left, deadline in 50 s',
    });

    const empty = new Map(busy).set(1, { viewers: 0, draining: true });
    const deleted = planRollout(input({ pods, edges: empty, state, now: 1_010_000 }));
    expect(deleted.action).toEqual({ type: 'delete', ordinal: 1 });
    expect(deleted.events.map((event) => event.reason)).toEqual(['PodDrained']);
    expect(deleted.state?.pod).toEqual({ ordinal: 1, drainSince: 1_000_000, deleted: true });

    const late = planRollout(input({ pods, edges: busy, state, now: 1_060_000 }));
    expect(late.action).toEqual({ type: 'delete', ordinal: 1 });
    expect(late.events[0]?.message).toMatch(/deadline passed with 5 viewers/);

    // Recreated at the new revision but not ready: wait; ready: the next pod.
    const recreating = planRollout(
      input({ pods: [pod(0), pod(1, NEW, false)], edges: empty, state: deleted.state, now: 1_011_000 }),
    );
    expect(recreating.action).toEqual({ type: 'none' });
    expect(recreating.progress?.reason).toBe('WaitingForPod');
    // The new pod's record: not draining.
    const fresh = new Map(busy).set(1, { viewers: 0, draining: false });
    const next = planRollout(
      input({ pods: [pod(0), pod(1, NEW)], edges: fresh, state: deleted.state, now: 1_012_000 }),
    );
    expect(next.action).toEqual({ type: 'drain', ordinal: 0 });
  });

  it('waits while the autoscaler drains, or while the load is unknown', () => {
    expect(planRollout(input({ pods: [pod(0), pod(1)], autoscalerDraining: true })).action).toEqual({
      type: 'none',
    });
    const unknown = planRollout(input({ pods: [pod(0), pod(1)], edges: undefined }));
    expect(unknown.action).toEqual({ type: 'none' });
    expect(unknown.progress?.reason).toBe('RolloutWaiting');
  });

  it('rolls a whole region: one pod out of service at a time, never without room, then removes the surge pod', () => {
    // A simulated region: 3 edges of 60 viewers each (target 100 per edge), players that re-join
    // the least loaded serving edge when their edge drains.
    const viewers = new Map<number, number>([
      [0, 60],
      [1, 60],
      [2, 60],
    ]);
    const revisions = new Map<number, string>([
      [0, OLD],
      [1, OLD],
      [2, OLD],
    ]);
    const ready = new Set([0, 1, 2]);
    const draining = new Set<number>();
    let state: RolloutInput['state'];
    let surge = 0;
    const reasons: string[] = [];
    for (let step = 0, now = 0; step < 200; step++, now += 1000) {
      // The StatefulSet: replicas + surge pods, new ones at the update revision.
      for (let ordinal = 0; ordinal < 3 + surge; ordinal++) {
        if (!revisions.has(ordinal)) {
          revisions.set(ordinal, NEW);
          viewers.set(ordinal, 0);
        } else ready.add(ordinal);
      }
      for (const ordinal of [...revisions.keys()]) {
        if (ordinal >= 3 + surge) {
          expect(viewers.get(ordinal)).toBe(0); // the surge pod was drained before removal
          revisions.delete(ordinal);
          ready.delete(ordinal);
        }
      }
      const pods = [...revisions].map(([ordinal, revision]) => pod(ordinal, revision, ready.has(ordinal)));
      const edges = new Map(
        [...revisions.keys()].map((ordinal) => [
          ordinal,
          { viewers: viewers.get(ordinal) ?? 0, draining: draining.has(ordinal) },
        ]),
      );
      const plan = planRollout(input({ pods, replicas: 3, edges, state, now }));
      reasons.push(...plan.events.map((event) => event.reason));
      state = plan.state;
      surge = plan.surge;
      if (plan.action.type === 'drain') {
        const { ordinal } = plan.action;
        // At most one pod out of service at a time.
        expect(draining.size).toBe(0);
        draining.add(ordinal);
        // Its viewers go to the least loaded serving edges, and there is room for all of them.
        for (let left = viewers.get(ordinal) ?? 0; left > 0; left--) {
          const target = [...revisions.keys()]
            .filter((other) => other !== ordinal && ready.has(other) && !draining.has(other))
            .sort((a, b) => (viewers.get(a) ?? 0) - (viewers.get(b) ?? 0))[0]!;
          expect(viewers.get(target)).toBeLessThan(100);
          viewers.set(target, (viewers.get(target) ?? 0) + 1);
        }
        viewers.set(ordinal, 0);
      }
      if (plan.action.type === 'delete') {
        const { ordinal } = plan.action;
        draining.delete(ordinal);
        revisions.delete(ordinal);
        ready.delete(ordinal);
      }
      if (draining.size > 0 && state?.pod === undefined) draining.clear(); // the surge pod went
      if (step > 0 && state === undefined && [...revisions.values()].every((revision) => revision === NEW))
        break;
    }
    expect(state).toBeUndefined();
    expect(surge).toBe(0);
    expect([...revisions.entries()].sort()).toEqual([
      [0, NEW],
      [1, NEW],
      [2, NEW],
    ]);
    expect(reasons.filter((reason) => reason === 'PodDrained')).toHaveLength(3);
    expect(reasons.at(-1)).toBe('RolloutComplete');
    expect([...viewers.values()].reduce((sum, count) => sum + count, 0)).toBe(180);
  });

  it('keeps its state in an annotation a new leader reads back', () => {
    const state = { revision: NEW, surge: 1, pod: { ordinal: 2, drainSince: 5, deleted: true } };
    expect(rolloutStateOf({ 'rtccdn.io/rollout': encodeRolloutState(state) })).toEqual(state);
    expect(rolloutStateOf({ 'rtccdn.io/rollout': '' })).toBeUndefined();
    expect(rolloutStateOf({ 'rtccdn.io/rollout': '{"junk":1}' })).toBeUndefined();
  });
});
