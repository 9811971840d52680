/**
 * `baseMs`·2^`attempt`, capped at `maxMs` (attempt 0 gives `baseMs`): the one exponential growth
 * every retry in both programs follows — worker and FFmpeg restarts, Redis reconnects, the
 * operator's watches and work queue (with jitter there: operator/src/runtime/backoff.ts).
 */
export function exponentialDelay(attempt: number, limits: { baseMs: number; maxMs: number }): number {
  return Math.min(limits.maxMs, limits.baseMs * 2 ** Math.min(Math.max(attempt, 0), 30));
}
