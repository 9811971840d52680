/**
 * A percentile is only worth its name when the sample has values above it: with nearest-rank,
 * p95 is a value other than the maximum from 20 samples on, p99 from 100 on. Below that they
 * are the maximum under another name, so a summary omits them and readers use `max`.
 */
export const MIN_SAMPLES = { p95: 20, p99: 100 } as const;

export interface Summary {
  n: number;
  p50: number;
  /** Present only from MIN_SAMPLES.p95 samples on. */
  p95?: number;
  /** Present only from MIN_SAMPLES.p99 samples on. */
  p99?: number;
  mean: number;
  min: number;
  max: number;
}

/** Nearest-rank percentiles of a sample (ms); tail percentiles only when the sample has one. */
export function summarize(values: readonly number[]): Summary {
  if (values.length === 0)
    return { n: 0, p50: Number.NaN, mean: Number.NaN, min: Number.NaN, max: Number.NaN };
  const sorted = [...values].sort((a, b) => a - b);
  const rank = (p: number) =>
    sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1))]!;
  const mean = sorted.reduce((sum, value) => sum + value, 0) / sorted.length;
  return {
    n: sorted.length,
    p50: rank(50),
    ...(sorted.length >= MIN_SAMPLES.p95 ? { p95: rank(95) } : {}),
    ...(sorted.length >= MIN_SAMPLES.p99 ? { p99: rank(99) } : {}),
    mean: round(mean, 1),
    min: sorted[0]!,
    max: sorted[sorted.length - 1]!,
  };
}

/** How a value varies between repeated rounds: range, mean and sample standard deviation. */
export interface Spread {
  n: number;
  mean: number;
  stdev: number;
  min: number;
  max: number;
}

export function spread(values: readonly number[]): Spread {
  const n = values.length;
  if (n === 0) return { n, mean: Number.NaN, stdev: Number.NaN, min: Number.NaN, max: Number.NaN };
  const mean = values.reduce((sum, value) => sum + value, 0) / n;
  const variance = n < 2 ? 0 : values.reduce((sum, value) => sum + (value - mean) ** 2, 0) / (n - 1);
  return {
    n,
    mean: round(mean, 1),
    stdev: round(Math.sqrt(variance), 1),
    min: Math.min(...values),
    max: Math.max(...values),
  };
}

/**
 * One line for a summary: p95/p99 when the sample has them, always the max and n, e.g.
 * `p50 14 ms  p95 16 ms  max 19 ms  (n=40)`.
 */
export function formatSummary(s: Summary, unit = 'ms'): string {
  const parts = [`p50 ${s.p50} ${unit}`];
  if (s.p95 !== undefined) parts.push(`p95 ${s.p95} ${unit}`);
  if (s.p99 !== undefined) parts.push(`p99 ${s.p99} ${unit}`);
  parts.push(`max ${s.max} ${unit}`);
  return `${parts.join('  ')}  (n=${s.n})`;
}

export function round(value: number, digits: number): number {
  const scale = 10 ** digits;
  return Math.round(value * scale) / scale;
}
