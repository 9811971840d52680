/**
 * Counts events per key (a client, a stream) in a sliding window; a key with `limit` events in
 * the last `windowMs` is blocked until the oldest of them leaves the window. What guessing
 * access keys and starting renditions run into.
 */
export class WindowLimiter {
  readonly #limit: number;
  readonly #windowMs: number;
  /** Event times per key, oldest first, at most `limit` kept. */
  readonly #failures = new Map<string, number[]>();
  readonly #sweepTimer: NodeJS.Timeout;

  constructor(limit: number, windowMs: number) {
    this.#limit = limit;
    this.#windowMs = windowMs;
    this.#sweepTimer = setInterval(() => this.#sweep(Date.now()), Math.max(1000, windowMs));
    this.#sweepTimer.unref();
  }

  /** Milliseconds until `key` may try again; 0 when it is not blocked. */
  blockedFor(key: string, now = Date.now()): number {
    const times = this.#recent(key, now);
    if (times.length < this.#limit) return 0;
    return Math.max(1, times[0]! + this.#windowMs - now);
  }

  record(key: string, now = Date.now()): void {
    const times = this.#recent(key, now);
    times.push(now);
    if (times.length > this.#limit) times.shift();
    this.#failures.set(key, times);
  }

  /** Keys currently tracked (for tests and metrics). */
  get size(): number {
    return this.#failures.size;
  }

  #recent(key: string, now: number): number[] {
    const times = this.#failures.get(key);
    if (!times) return [];
    while (times.length > 0 && times[0]! <= now - this.#windowMs) times.shift();
    if (times.length === 0) this.#failures.delete(key);
    return times;
  }

  #sweep(now: number): void {
    for (const key of [...this.#failures.keys()]) this.#recent(key, now);
  }

  close(): void {
    clearInterval(this.#sweepTimer);
  }
}
