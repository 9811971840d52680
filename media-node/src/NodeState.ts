import { RtccdnError } from '../contract/errors.js';

/**
 * Whether the node takes new sessions: not while shutting down (every request), not while
 * draining (new viewers go to another edge; publishers and current viewers are not affected).
 */
export class NodeState {
  #closing = false;
  #draining = false;

  get closing(): boolean {
    return this.#closing;
  }

  get draining(): boolean {
    return this.#draining;
  }

  /** False when it already was closing. */
  beginClosing(): boolean {
    if (this.#closing) return false;
    this.#closing = true;
    return true;
  }

  /** False when nothing changed. */
  setDraining(draining: boolean): boolean {
    if (this.#draining === draining) return false;
    this.#draining = draining;
    return true;
  }

  assertAccepting(): void {
    if (this.#closing)
      throw new RtccdnError('NODE_SHUTTING_DOWN', 'node is shutting down', { retryAfterMs: 5000 });
  }

  assertAcceptingViewers(): void {
    this.assertAccepting();
    if (this.#draining) {
      throw new RtccdnError('NODE_DRAINING', 'this edge is draining; play from another edge', {
        retryAfterMs: 1000,
      });
    }
  }
}
