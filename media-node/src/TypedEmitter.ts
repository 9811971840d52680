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

  protected emit<K extends keyof Events & string>(event: K, ...args: Events[K]): void {
    this.#emitter.emit(event, ...args);
  }
}
