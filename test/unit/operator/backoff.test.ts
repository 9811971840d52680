/**
 * The operator's one backoff and jitter formula (runtime/backoff.ts), which the list-watch, the
 * work queue, leader election and the Redis readers all go through.
 */
import { describe, expect, it } from '@jest/globals';
import { Backoff, exponentialDelay, jittered, randomBetween } from '../../../operator/src/runtime/backoff.js';

describe('backoff', () => {
  it('doubles from the base per attempt and stops at the cap', () => {
    const limits = { baseMs: 200, maxMs: 5_000 };
    expect([0, 1, 2, 3, 4, 5, 6, 40].map((attempt) => exponentialDelay(attempt, limits))).toEqual([
      200, 400, 800, 1_600, 3_200, 5_000, 5_000, 5_000,
    ]);
  });

  it('draws each Backoff delay between half the ceiling and the ceiling, and starts over on reset', () => {
    const lowest = new Backoff({ baseMs: 100, maxMs: 1_000, random: () => 0 });
    const highest = new Backoff({ baseMs: 100, maxMs: 1_000, random: () => 1 });
    expect([1, 2, 3, 4, 5].map(() => lowest.next())).toEqual([50, 100, 200, 400, 500]);
    expect([1, 2, 3, 4, 5].map(() => highest.next())).toEqual([100, 200, 400, 800, 1_000]);
    expect(highest.attempts).toBe(5);
    highest.reset();
    expect(highest.next()).toBe(100);
  });

  it('spreads periodic timers symmetrically around their period', () => {
    expect(jittered(1_000, 0.1, () => 0)).toBe(900);
    expect(jittered(1_000, 0.1, () => 0.5)).toBe(1_000);
    expect(jittered(1_000, 0.1, () => 1)).toBe(1_100);
    expect(randomBetween(300, 600, () => 0.5)).toBe(450);
  });
});
