import { describe, expect, it } from '@jest/globals';
import { fileNameFor } from '../../bench/record.js';
import { formatSummary, MIN_SAMPLES, spread, summarize } from '../../bench/stats.js';

const range = (n: number) => Array.from({ length: n }, (_, i) => i + 1);

describe('bench summaries', () => {
  it('give no p95 below 20 samples and no p99 below 100: there they would be the maximum', () => {
    const small = summarize(range(MIN_SAMPLES.p95 - 1));
    expect(small).toEqual({ n: 19, p50: 10, mean: 10, min: 1, max: 19 });
    expect(formatSummary(small)).toBe('p50 10 ms  max 19 ms  (n=19)');

    const medium = summarize(range(MIN_SAMPLES.p95));
    expect(medium.p95).toBe(19); // below the maximum, 20
    expect(medium).not.toHaveProperty('p99');

    const large = summarize(range(MIN_SAMPLES.p99));
    expect([large.p95, large.p99, large.max]).toEqual([95, 99, 100]);
    expect(formatSummary(large)).toBe('p50 50 ms  p95 95 ms  p99 99 ms  max 100 ms  (n=100)');
  });

  it('describe an empty sample by n = 0', () => {
    expect(summarize([]).n).toBe(0);
    expect(spread([]).n).toBe(0);
  });

  it('spread: mean, sample standard deviation and range over rounds', () => {
    expect(spread([2, 4, 4, 4, 5, 5, 7, 9])).toEqual({ n: 8, mean: 5, stdev: 2.1, min: 2, max: 9 });
    expect(spread([-3])).toEqual({ n: 1, mean: -3, stdev: 0, min: -3, max: -3 });
  });

  it('name run files by their UTC start, sortable and without colons', () => {
    expect(fileNameFor(new Date('2026-12-01T19:15:03.456Z'))).toBe('2026-12-01T19-15-03Z.json');
  });
});
