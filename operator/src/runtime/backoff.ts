import { exponentialDelay } from '../../../media-node/contract/runtime.js';

/**
 * Exponential backoff with full jitter: each delay is random in [base·2^n / 2, base·2^n], capped
 * at `maxMs`. Jitter keeps many clients (operator replicas, watches of several kinds) from
 * retrying in step against an API server that just came back.
 */
export class Backoff {
  readonly #baseMs: number;
  readonly #maxMs: number;
  readonly #random: () => number;
  #attempt = 0;

  constructor(options: { baseMs: number; maxMs: number; random?: () => number }) {
    this.#baseMs = options.baseMs;
    this.#maxMs = options.maxMs;
    this.#random = options.random ?? Math.random;
  }

  /** The delay before the next attempt (and counts the attempt). */
  next(): number {
    const ceiling = exponentialDelay(this.#attempt, { baseMs: this.#baseMs, maxMs: this.#maxMs });
    this.#attempt++;
    return Math.round(randomBetween(ceiling / 2, ceiling, this.#random));
  }

  /** Failures since the last reset. */
  get attempts(): number {
    return this.#attempt;
  }

  reset(): void {
    this.#attempt = 0;
  }
}

// The work queue uses the growth without jitter, like client-go's per-item rate limiter.
export { exponentialDelay };

/** Resolves after `ms`, or at once when `signal` aborts (never rejects). */
export function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    if (signal?.aborted) {
      resolve();
      return;
    }
    const timer = setTimeout(done, ms);
    function done(): void {
      clearTimeout(timer);
      signal?.removeEventListener('abort', done);
      resolve();
    }
    signal?.addEventListener('abort', done, { once: true });
  });
}

/** `ms` ± `fraction`, so periodic work of several replicas or objects does not line up. */
export function jittered(ms: number, fraction = 0.1, random: () => number = Math.random): number {
  return Math.round(randomBetween(ms * (1 - fraction), ms * (1 + fraction), random));
}

/** A random value in [min, max]: the one jitter formula, so that timers of many objects spread. */
export function randomBetween(min: number, max: number, random: () => number = Math.random): number {
  return min + (max - min) * random();
}
