import { EventEmitter } from 'node:events';

/**
 * EventEmitter with a compile-time event map (as mediasoup's EnhancedEventEmitter does):
 * `emitter.on('close', (reason) => …)` is checked against the declared events.
 */
// biome-ignore lint/suspicious/noExplicitAny: event argument tuples are heterogenous by design
export type EventMap = Record<string, any[]>;

export class TypedEmitter<Events extends EventMap> {
  readonly #emitter = new EventEmitter();

  constructor() {
    // Sessions subscribe per stream; a popular stream legitimately has many listeners.
    this.#emitter.setMaxListeners(0);
  }

  on<K extends keyof Events & string>(event: K, listener: (...args: Events[K]) => void): this {
    this.#emitter.on(event, listener as (...args: unknown[]) => void);
    return this;
  }

  once<K extends keyof Events & string>(event: K, listener: (...args: Events[K]) => void): this {
    this.#emitter.once(event, listener as (...args: unknown[]) => void);
    return this;
  }

  off<K extends keyof Events & string>(event: K, listener: (...args: Events[K]) => void): this {
    this.#emitter.off(event, listener as (...args: unknown[]) => void);
    return this;
  }

  /**
   * Calls every listener of `event`. A listener that throws does not stop the others nor unwind
   * into the emitter (as mediasoup's safeEmit): its error goes to `listenerErrors`.
   */
  protected emit<K extends keyof Events & string>(event: K, ...args: Events[K]): void {
    for (const listener of this.#emitter.rawListeners(event) as ((...args: unknown[]) => void)[]) {
      try {
        listener.apply(this, args);
      } catch (error) {
        listenerErrors.report(this.constructor.name, event, error);
      }
    }
  }
}

/**
 * Where errors thrown by event listeners go: one line on stderr by default (the process keeps
 * running; the emitter's state stays consistent). The media node points it at its logger.
 */
export const listenerErrors = {
  report(emitter: string, event: string, error: unknown): void {
    process.stderr.write(
      `${JSON.stringify({ level: 50, msg: 'event listener threw', emitter, event, err: String((error as Error)?.stack ?? error) })}\n`,
    );
  },
};
