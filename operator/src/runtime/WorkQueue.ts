/**
 * The work queue between watches and reconcilers, with client-go's semantics:
 *
 * - a key is queued at most once, however many events arrive for it (dedup);
 * - a key is never handed to two workers at once: added while being processed, it is queued
 *   again when the worker calls done();
 * - per-key exponential backoff for failures (addRateLimited / forget), and delayed adds
 *   (addAfter) for "look again later";
 * - shutDown() wakes every waiting worker with `undefined`.
 */
import { exponentialDelay } from './backoff.js';

export interface WorkQueueOptions {
  /** First retry delay of a failing key; doubles per failure. */
  baseDelayMs?: number;
  /** Longest retry delay. */
  maxDelayMs?: number;
  /** Called whenever the number of queued keys changes (metrics). */
  onDepthChange?: (depth: number) => void;
}

export class WorkQueue {
  readonly #baseDelayMs: number;
  readonly #maxDelayMs: number;
  readonly #onDepthChange: ((depth: number) => void) | undefined;
  readonly #queue: string[] = [];
  /** Keys waiting to be processed (in #queue, or re-queued when their processing ends). */
  readonly #dirty = new Set<string>();
  readonly #processing = new Set<string>();
  readonly #failures = new Map<string, number>();
  /** Delayed adds: key → timer and when it fires (only the earliest is kept). */
  readonly #delayed = new Map<string, { timer: NodeJS.Timeout; at: number }>();
  readonly #waiters: ((key: string | undefined) => void)[] = [];
  #shuttingDown = false;

  constructor(options: WorkQueueOptions = {}) {
    this.#baseDelayMs = options.baseDelayMs ?? 200;
    this.#maxDelayMs = options.maxDelayMs ?? 120_000;
    this.#onDepthChange = options.onDepthChange;
  }

  get length(): number {
    return this.#queue.length;
  }

  get shuttingDown(): boolean {
    return this.#shuttingDown;
  }

  add(key: string): void {
    if (this.#shuttingDown || this.#dirty.has(key)) return;
    this.#dirty.add(key);
    if (this.#processing.has(key)) return; // done() queues it again
    this.#push(key);
  }

  /** Adds `key` after `delayMs`; an earlier pending delayed add of the same key wins. */
  addAfter(key: string, delayMs: number): void {
    if (this.#shuttingDown) return;
    if (delayMs <= 0) {
      this.add(key);
      return;
    }
    const at = Date.now() + delayMs;
    const pending = this.#delayed.get(key);
    if (pending && pending.at <= at) return;
    if (pending) clearTimeout(pending.timer);
    const timer = setTimeout(() => {
      this.#delayed.delete(key);
      this.add(key);
    }, delayMs);
    timer.unref();
    this.#delayed.set(key, { timer, at });
  }

  /** Adds `key` after its backoff delay (which doubles with every call until forget()). */
  addRateLimited(key: string): number {
    const failures = this.#failures.get(key) ?? 0;
    this.#failures.set(key, failures + 1);
    const delay = exponentialDelay(failures, { baseMs: this.#baseDelayMs, maxMs: this.#maxDelayMs });
    this.addAfter(key, delay);
    return delay;
  }

  /** The key succeeded: its next failure starts from the base delay again. */
  forget(key: string): void {
    this.#failures.delete(key);
  }

  /** Failures of `key` since the last forget(). */
  failures(key: string): number {
    return this.#failures.get(key) ?? 0;
  }

  /** The next key to process, or undefined once the queue shuts down. */
  get(): Promise<string | undefined> {
    if (this.#queue.length > 0) return Promise.resolve(this.#take());
    if (this.#shuttingDown) return Promise.resolve(undefined);
    return new Promise((resolve) => this.#waiters.push(resolve));
  }

  /** The worker finished `key` (successfully or not). */
  done(key: string): void {
    this.#processing.delete(key);
    if (this.#dirty.has(key) && !this.#shuttingDown) this.#push(key);
  }

  shutDown(): void {
    if (this.#shuttingDown) return;
    this.#shuttingDown = true;
    for (const { timer } of this.#delayed.values()) clearTimeout(timer);
    this.#delayed.clear();
    this.#queue.length = 0;
    this.#dirty.clear();
    this.#onDepthChange?.(0);
    for (const waiter of this.#waiters.splice(0)) waiter(undefined);
  }

  #push(key: string): void {
    const waiter = this.#waiters.shift();
    if (waiter) {
      this.#dirty.delete(key);
      this.#processing.add(key);
      waiter(key);
      return;
    }
    this.#queue.push(key);
    this.#onDepthChange?.(this.#queue.length);
  }

  #take(): string {
    const key = this.#queue.shift()!;
    this.#dirty.delete(key);
    this.#processing.add(key);
    this.#onDepthChange?.(this.#queue.length);
    return key;
  }
}
