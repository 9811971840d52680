import type { Session, SessionProtocol } from '../media/Session.js';
import type { MediaNodeMetrics } from '../metrics.js';

/**
 * Every WHIP and WHEP session on this node: the one place that knows them, counts them in the
 * metrics (per-stream viewer series live as long as the stream has viewers here) and ends them
 * by their resource URL.
 */
export class Sessions {
  readonly #sessions = new Map<string, Session>();
  readonly #viewersByStream = new Map<string, number>();
  readonly #metrics: MediaNodeMetrics;

  constructor(metrics: MediaNodeMetrics) {
    this.#metrics = metrics;
  }

  track(session: Session): void {
    this.#sessions.set(session.id, session);
    if (session.protocol === 'whep') this.#countViewer(session.streamName, +1);
    session.once('close', (reason) => {
      this.#sessions.delete(session.id);
      if (session.protocol === 'whep') this.#countViewer(session.streamName, -1);
      this.#metrics.sessionsClosed.inc({
        protocol: session.protocol,
        reason: reason.split(':')[0] ?? reason,
      });
    });
  }

  /** Ends a session by its resource URL parts; false when there is no such session. */
  end(protocol: SessionProtocol, streamName: string, sessionId: string): boolean {
    const session = this.#sessions.get(sessionId);
    if (!session || session.protocol !== protocol || session.streamName !== streamName) return false;
    session.close('client-delete');
    return true;
  }

  get size(): number {
    return this.#sessions.size;
  }

  /** Viewer (WHEP) sessions. */
  get viewerCount(): number {
    let viewers = 0;
    for (const count of this.#viewersByStream.values()) viewers += count;
    return viewers;
  }

  viewersOf(stream: string): number {
    return this.#viewersByStream.get(stream) ?? 0;
  }

  values(): IterableIterator<Session> {
    return this.#sessions.values();
  }

  get(id: string): Session | undefined {
    return this.#sessions.get(id);
  }

  /** Closes every session, viewers first: each is told the node shut down, not that its stream ended. */
  closeAll(reason: string): void {
    const sessions = [...this.#sessions.values()];
    for (const session of sessions.filter((one) => one.protocol === 'whep')) session.close(reason);
    for (const session of sessions) session.close(reason);
  }

  #countViewer(stream: string, delta: number): void {
    const count = (this.#viewersByStream.get(stream) ?? 0) + delta;
    if (count > 0) {
      this.#viewersByStream.set(stream, count);
      this.#metrics.viewers.set({ stream }, count);
    } else {
      this.#viewersByStream.delete(stream);
      this.#metrics.viewers.remove({ stream });
    }
  }
}
