import { describe, expect, it } from '@jest/globals';
import {
  type AdaptationPolicy,
  type AdaptationState,
  DEFAULT_ADAPTATION_POLICY,
  decideLevel,
  initialAdaptationState,
} from '../../media-node/src/playback/adaptation.js';

const policy: AdaptationPolicy = { ...DEFAULT_ADAPTATION_POLICY, levels: 3 };

/** Feeds one sample per second (loss fraction per second, or a function of the second) from `start`. */
function run(
  start: AdaptationState,
  seconds: number,
  loss: number | ((second: number, state: AdaptationState) => number),
  options: { policy?: AdaptationPolicy; fromMs?: number; availableBitrate?: number } = {},
): { state: AdaptationState; levels: number[] } {
  let state = start;
  const levels: number[] = [];
  for (let second = 1; second <= seconds; second++) {
    const fractionLost = typeof loss === 'number' ? loss : loss(second, state);
    state = decideLevel(
      state,
      {
        nowMs: (options.fromMs ?? 0) + second * 1000,
        fractionLost,
        availableBitrate: options.availableBitrate,
      },
      options.policy ?? policy,
    );
    levels.push(state.level);
  }
  return { state, levels };
}

describe('decideLevel (bitrate adaptation)', () => {
  it('stays on the top level of a clean link', () => {
    expect(run(initialAdaptationState(2, 0, policy), 30, 0).levels.every((level) => level === 2)).toBe(true);
  });

  it('steps down at once on severe loss, after two lossy intervals on moderate loss', () => {
    const severe = run(initialAdaptationState(2, 0, policy), 2, 0.5);
    expect(severe.levels).toEqual([2, 1]); // the first second is still settling after the start
    const moderate = run(initialAdaptationState(2, 0, policy), 4, 0.08);
    expect(moderate.levels).toEqual([2, 2, 1, 1]);
  });

  it('ignores the reports of the settle time after a change (they describe the previous level)', () => {
    const { levels } = run(initialAdaptationState(2, 0, policy), 4, 0.5);
    // Down at 2 s; 3 s is inside the settle time; down again at 4 s once it has passed.
    expect(levels).toEqual([2, 1, 1, 0]);
  });

  it('never goes below the lowest level nor above the top', () => {
    expect(run(initialAdaptationState(0, 0, policy), 10, 0.9).levels.every((level) => level === 0)).toBe(
      true,
    );
    expect(initialAdaptationState(7, 0, policy).level).toBe(2);
    expect(initialAdaptationState(-1, 0, policy).level).toBe(0);
  });

  it('steps up only after clean intervals and the hold time, one level at a time', () => {
    const low = initialAdaptationState(0, 0, policy);
    const { levels } = run(low, 12, 0);
    // Four clean intervals are there at 4 s; the 5 s hold decides: up at 5 s, again at 10 s.
    expect(levels.indexOf(1)).toBe(4);
    expect(levels.indexOf(2)).toBe(9);
  });

  it('does not flap on a link that only fits the middle level: each failed step up doubles the hold', () => {
    // The link loses 30% whenever the viewer is on the top level, nothing otherwise.
    const { levels } = run(initialAdaptationState(1, 0, policy), 180, (_second, state) =>
      state.level === 2 ? 0.3 : 0,
    );
    const ups = levels.filter((level, index) => index > 0 && level > levels[index - 1]!).length;
    // Holds of 5, 10, 20, 40, 60, 60 s between attempts: at most 6 tries in three minutes
    // (a fixed 5 s hold would have made about 25), and never below the middle level.
    expect(ups).toBeGreaterThanOrEqual(2);
    expect(ups).toBeLessThanOrEqual(6);
    expect(Math.min(...levels)).toBe(1);
    const gaps: number[] = [];
    let lastUp = -1;
    levels.forEach((level, index) => {
      if (index > 0 && level > levels[index - 1]!) {
        if (lastUp >= 0) gaps.push(index - lastUp);
        lastUp = index;
      }
    });
    for (let index = 1; index < gaps.length; index++)
      expect(gaps[index]!).toBeGreaterThanOrEqual(gaps[index - 1]!);
  });

  it('resets the hold once a step up has held', () => {
    let state: AdaptationState = { ...initialAdaptationState(1, 0, policy), upHoldMs: 40_000 };
    // Up after the 40 s hold, it holds past the failed-up window; down later for another reason.
    ({ state } = run(state, 41, 0));
    expect(state.level).toBe(2);
    ({ state } = run(state, 15, 0, { fromMs: 41_000 }));
    expect(state.upHoldMs).toBe(policy.minUpHoldMs);
  });

  it('follows a bandwidth estimate when there is one: down to what fits, never up past it', () => {
    const withBitrates: AdaptationPolicy = { ...policy, levelBitrates: [150_000, 500_000, 1_500_000] };
    const down = run(initialAdaptationState(2, 0, withBitrates), 2, 0, {
      policy: withBitrates,
      availableBitrate: 400_000,
    });
    expect(down.levels).toEqual([2, 0]);
    const capped = run(initialAdaptationState(0, 0, withBitrates), 30, 0, {
      policy: withBitrates,
      availableBitrate: 700_000,
    });
    expect(Math.max(...capped.levels)).toBe(1);
  });
});

describe('decideLevel right after a step up', () => {
  it('goes back down at once when the step up loses packets now, and holds longer before the next try', () => {
    // Up from 1 to 2 at 5 s (four clean intervals, the 5 s hold passed).
    const up = run(initialAdaptationState(1, 0, policy), 5, 0).state;
    expect(up).toMatchObject({ level: 2, changedAtMs: 5000 });
    // 300 ms later the viewer NACKs 40 % of what it is sent: inside the settle time, but fresh.
    const back = decideLevel(up, { nowMs: 5300, fractionLost: 0.4, freshLoss: 0.4 }, policy);
    expect(back.level).toBe(1);
    expect(back.upHoldMs).toBe(up.upHoldMs * 2);
  });

  it('still ignores receiver-report loss inside the settle time (it may describe the level before)', () => {
    const up = run(initialAdaptationState(1, 0, policy), 5, 0).state;
    expect(decideLevel(up, { nowMs: 5300, fractionLost: 0.4, freshLoss: 0 }, policy).level).toBe(2);
    // And a step down is no step up: fresh loss just after it waits for the settle time.
    const down = decideLevel(up, { nowMs: 7000, fractionLost: 0.5, freshLoss: 0.5 }, policy);
    expect(down.level).toBe(1);
    expect(decideLevel(down, { nowMs: 7300, fractionLost: 0.5, freshLoss: 0.5 }, policy).level).toBe(1);
  });
});

describe('decideLevel with measured layer bitrates', () => {
  it('goes straight to the level that fits what a lossy link delivered, not one level per interval', () => {
    const state = initialAdaptationState(2, 0, policy);
    const next = decideLevel(
      state,
      {
        nowMs: 2000,
        fractionLost: 0.7,
        // 1.2 Mbit/s sent, 70 % lost: about 360 kbit/s got through; only the lowest layer fits.
        deliveredBitrate: 360_000,
        levelBitrates: [150_000, 500_000, 1_200_000],
      },
      policy,
    );
    expect(next.level).toBe(0);
    // Without layer bitrates it is one level at a time.
    expect(
      decideLevel(state, { nowMs: 2000, fractionLost: 0.7, deliveredBitrate: 360_000 }, policy).level,
    ).toBe(1);
  });

  it('does not use a delivered rate to step down when the link is not lossy', () => {
    const state = initialAdaptationState(2, 0, policy);
    const next = decideLevel(
      state,
      {
        nowMs: 2000,
        fractionLost: 0,
        deliveredBitrate: 100_000,
        levelBitrates: [150_000, 500_000, 1_200_000],
      },
      policy,
    );
    expect(next.level).toBe(2); // a quiet source sends little: that is no sign of a weak link
  });
});
