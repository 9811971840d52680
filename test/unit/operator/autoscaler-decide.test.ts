/**
 * The edge autoscaler's pure decision function: examples of each rule, then properties checked
 * by fast-check over arbitrary inputs and over random sequences of evaluations (a simulated
 * region whose viewers come and go): replicas never leave [min, max], scale-up is immediate,
 * nothing is removed before the stabilization window or without a drain, and a drain ends.
 */
import { describe, expect, it } from '@jest/globals';
import fc from 'fast-check';
import {
  decideScale,
  recommendedReplicas,
  type ScaleInput,
  type ScalePolicy,
  type ScalerState,
} from '../../../operator/src/controllers/autoscaler/decide.js';

const MIN = 60_000;
const policy: ScalePolicy = {
  minReplicas: 1,
  maxReplicas: 10,
  targetViewersPerEdge: 100,
  stabilizationMs: 5 * MIN,
  drainGraceMs: 10 * MIN,
};

const input = (overrides: Partial<ScaleInput>): ScaleInput => ({
  policy,
  replicas: 3,
  viewers: 250,
  podViewers: new Map([
    [0, 100],
    [1, 100],
    [2, 50],
  ]),
  state: { lastScaleTime: 0 },
  now: 60 * MIN,
  ...overrides,
});

describe('decideScale', () => {
  it('recommends ceil(viewers / target) within the bounds', () => {
    expect(recommendedReplicas(0, policy)).toBe(1);
    expect(recommendedReplicas(100, policy)).toBe(1);
    expect(recommendedReplicas(101, policy)).toBe(2);
    expect(recommendedReplicas(5_000, policy)).toBe(10);
  });

  it('scales up at once, even right after a scale', () => {
    const decision = decideScale(input({ viewers: 720, state: { lastScaleTime: 60 * MIN - 1 } }));
    expect(decision).toMatchObject({ desired: 8, replicas: 8, reason: 'scale-up', draining: [] });
    expect(decision.state).toEqual({ lastScaleTime: 60 * MIN });
  });

  it('does not scale down within the stabilization window', () => {
    const decision = decideScale(input({ viewers: 40, state: { lastScaleTime: 60 * MIN - 4 * MIN } }));
    expect(decision).toMatchObject({ desired: 1, replicas: 3, reason: 'stabilizing', draining: [] });
  });

  it('after the window, drains the highest ordinals first and keeps the replicas until they are empty', () => {
    const started = decideScale(input({ viewers: 40 }));
    expect(started).toMatchObject({ desired: 1, replicas: 3, reason: 'drain-started', draining: [1, 2] });
    expect(started.state.drain).toEqual({ toReplicas: 1, since: 60 * MIN });

    // Pod 2 is empty, pod 1 still has viewers: only pod 2 goes.
    const later = 60 * MIN + 30_000;
    const partial = decideScale(
      input({
        viewers: 40,
        now: later,
        state: started.state,
        podViewers: new Map([
          [0, 30],
          [1, 10],
          [2, 0],
        ]),
      }),
    );
    expect(partial).toMatchObject({ replicas: 2, reason: 'scale-down', draining: [1] });

    const done = decideScale(
      input({
        replicas: 2,
        viewers: 30,
        now: later + 30_000,
        state: partial.state,
        podViewers: new Map([
          [0, 30],
          [1, 0],
        ]),
      }),
    );
    expect(done).toMatchObject({ replicas: 1, reason: 'scale-down', draining: [] });
    expect(done.state).toEqual({ lastScaleTime: later + 30_000 });
  });

  it('removes a pod without a record (no viewers registered) but not one that was not asked to drain yet', () => {
    const started = decideScale(input({ viewers: 40, podViewers: new Map([[0, 40]]) }));
    // Same instant: the drain request has just been sent.
    expect(started.replicas).toBe(3);
    const next = decideScale(
      input({ viewers: 40, podViewers: new Map([[0, 40]]), state: started.state, now: 60 * MIN + 1 }),
    );
    expect(next.replicas).toBe(1);
  });

  it('removes draining pods with viewers once the grace period is over', () => {
    const state: ScalerState = { lastScaleTime: 0, drain: { toReplicas: 1, since: 60 * MIN } };
    const beforeGrace = decideScale(input({ viewers: 40, state, now: 60 * MIN + 9 * MIN }));
    expect(beforeGrace).toMatchObject({ replicas: 3, reason: 'draining', draining: [1, 2] });
    const afterGrace = decideScale(input({ viewers: 40, state, now: 60 * MIN + 10 * MIN }));
    expect(afterGrace).toMatchObject({ replicas: 1, reason: 'scale-down' });
  });

  it('shrinks or cancels a drain when viewers come back', () => {
    const state: ScalerState = { lastScaleTime: 0, drain: { toReplicas: 1, since: 60 * MIN } };
    const shrunk = decideScale(input({ viewers: 180, state, now: 61 * MIN }));
    expect(shrunk).toMatchObject({ desired: 2, replicas: 3, draining: [2], reason: 'draining' });
    const cancelled = decideScale(input({ viewers: 250, state, now: 61 * MIN }));
    expect(cancelled).toMatchObject({ replicas: 3, draining: [], reason: 'drain-cancelled' });
    expect(cancelled.state.drain).toBeUndefined();
  });

  it('brings a count outside the bounds inside at once', () => {
    expect(decideScale(input({ replicas: 12, viewers: 2_000 }))).toMatchObject({
      replicas: 10,
      reason: 'bounds',
    });
    expect(decideScale(input({ replicas: 0, viewers: 0 }))).toMatchObject({ replicas: 1, reason: 'bounds' });
    expect(decideScale(input({ replicas: 0, viewers: 450 }))).toMatchObject({
      replicas: 5,
      reason: 'bounds',
    });
  });

  it('with unknown viewers, keeps the count (within bounds) and starts no drain', () => {
    const decision = decideScale(input({ viewers: undefined, podViewers: undefined }));
    expect(decision).toMatchObject({ desired: 3, replicas: 3, reason: 'steady', draining: [] });
  });
});

// --- properties -----------------------------------------------------------------------------------

const policies = fc
  .record({
    minReplicas: fc.integer({ min: 0, max: 5 }),
    span: fc.integer({ min: 0, max: 10 }),
    targetViewersPerEdge: fc.integer({ min: 1, max: 1000 }),
    stabilizationMs: fc.integer({ min: 0, max: 10 * MIN }),
    drainGraceMs: fc.integer({ min: 0, max: 20 * MIN }),
  })
  .map(({ span, ...rest }): ScalePolicy => ({ ...rest, maxReplicas: Math.max(1, rest.minReplicas + span) }));

const inputs = fc
  .record({
    policy: policies,
    replicas: fc.integer({ min: 0, max: 20 }),
    viewers: fc.option(fc.integer({ min: 0, max: 50_000 }), { nil: undefined }),
    pods: fc.array(fc.option(fc.integer({ min: 0, max: 2000 }), { nil: undefined }), { maxLength: 20 }),
    lastScaleAgo: fc.integer({ min: 0, max: 30 * MIN }),
    drain: fc.option(
      fc.record({
        toReplicas: fc.integer({ min: 0, max: 20 }),
        sinceAgo: fc.integer({ min: 0, max: 30 * MIN }),
      }),
      { nil: undefined },
    ),
  })
  .map(({ policy: p, replicas, viewers, pods, lastScaleAgo, drain }): ScaleInput => {
    const now = 100 * MIN;
    return {
      policy: p,
      replicas,
      viewers,
      podViewers:
        viewers === undefined
          ? undefined
          : new Map(
              pods.flatMap((v, ordinal) => (v === undefined ? [] : [[ordinal, v] as [number, number]])),
            ),
      state: {
        lastScaleTime: now - lastScaleAgo,
        ...(drain ? { drain: { toReplicas: drain.toReplicas, since: now - drain.sinceAgo } } : {}),
      },
      now,
    };
  });

describe('decideScale properties', () => {
  it('never leaves replicas outside [min, max]', () => {
    fc.assert(
      fc.property(inputs, (scale) => {
        const { replicas } = decideScale(scale);
        return replicas >= scale.policy.minReplicas && replicas <= scale.policy.maxReplicas;
      }),
    );
  });

  it('scales up at once to the recommendation when it is above the current count', () => {
    fc.assert(
      fc.property(inputs, (scale) => {
        fc.pre(scale.viewers !== undefined);
        const wanted = recommendedReplicas(scale.viewers!, scale.policy);
        fc.pre(wanted > scale.replicas);
        return decideScale(scale).replicas === wanted;
      }),
    );
  });

  it('never removes pods without a drain under way, unless the count is above max', () => {
    fc.assert(
      fc.property(inputs, (scale) => {
        const decision = decideScale(scale);
        if (decision.replicas >= scale.replicas) return true;
        const drainUnderWay =
          scale.state.drain !== undefined && scale.state.drain.toReplicas < scale.replicas;
        return scale.replicas > scale.policy.maxReplicas || drainUnderWay;
      }),
    );
  });

  it('only ever drains ordinals that will be removed, and never starts a drain within the window', () => {
    fc.assert(
      fc.property(inputs, (scale) => {
        const decision = decideScale(scale);
        const inRange = decision.draining.every(
          (ordinal) => ordinal >= decision.desired && ordinal < decision.replicas,
        );
        const started = decision.reason === 'drain-started';
        const windowOver = scale.now - scale.state.lastScaleTime >= scale.policy.stabilizationMs;
        return inRange && (!started || windowOver);
      }),
    );
  });

  it('in a simulated region, scale-downs come only after the window, step down through drains, and drains end', () => {
    const ticks = fc.array(
      fc.record({
        dtMs: fc.integer({ min: 1_000, max: 2 * MIN }),
        viewers: fc.integer({ min: 0, max: 1_500 }),
      }),
      { minLength: 1, maxLength: 80 },
    );
    fc.assert(
      fc.property(policies, ticks, (p, steps) => {
        let now = 0;
        let replicas = p.minReplicas;
        let state: ScalerState = { lastScaleTime: 0 };
        let lastChange = 0;
        for (const { dtMs, viewers } of steps) {
          now += dtMs;
          // Viewers spread evenly over the pods; draining pods lose theirs.
          const draining = new Set(
            state.drain
              ? Array.from({ length: replicas }, (_, i) => i).filter((i) => i >= state.drain!.toReplicas)
              : [],
          );
          const perPod = replicas === 0 ? 0 : Math.ceil(viewers / replicas);
          const podViewers = new Map(
            Array.from({ length: replicas }, (_, i) => [i, draining.has(i) ? 0 : perPod] as [number, number]),
          );
          const decision = decideScale({ policy: p, replicas, viewers, podViewers, state, now });
          // A scale-down step only ends a drain started in an earlier evaluation...
          if (decision.replicas < replicas && !(state.drain && now > state.drain.since)) return false;
          // ...and a drain only starts after a quiet window.
          if (decision.reason === 'drain-started' && now - lastChange < p.stabilizationMs) return false;
          if (decision.replicas !== replicas) lastChange = now;
          replicas = decision.replicas;
          state = decision.state;
          if (replicas < p.minReplicas || replicas > p.maxReplicas) return false;
        }
        // Viewers settle: within a few evaluations (each after the window and the grace), every
        // drain ends and the count is the recommendation.
        const settled = steps.at(-1)!.viewers;
        for (let tick = 0; tick < 6; tick++) {
          now += p.stabilizationMs + p.drainGraceMs + 1;
          const podViewers = new Map(Array.from({ length: replicas }, (_, i) => [i, 0] as [number, number]));
          const decision = decideScale({ policy: p, replicas, viewers: settled, podViewers, state, now });
          replicas = decision.replicas;
          state = decision.state;
        }
        return replicas === recommendedReplicas(settled, p) && state.drain === undefined;
      }),
    );
  });
});
