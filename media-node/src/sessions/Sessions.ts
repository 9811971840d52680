import { RtccdnError } from '../../contract/errors.js';
import type { Session, SessionProtocol } from '../media/Session.js';
import type { MediaNodeMetrics } from '../metrics.js';

/**
 * Every WHIP and WHEP session on this node: the one place that knows them, counts them in the
 * metrics (per-stream viewer series live as long as the stream has viewers here) and ends them
 * by their resource URL.
 */
/**
 * Reasons the server ends a session with that a player should answer by playing (or publishing)
 * again at the same URL: the session resource says so afterwards (410 SESSION_ENDED).
 */
export const REJOIN_REASONS: ReadonlySet<string> = new Set(['node-draining', 'node-shutdown']);
/** How many such ended sessions are remembered, and for how long. */
const ENDED_MAX = 20_000;
const ENDED_TTL_MS = 10 * 60_000;

export class Sessions {
  readonly #sessions = new Map<string, Session>();
  /** Sessions ended for a REJOIN_REASONS reason, oldest first: id → why and when. */
  readonly #ended = new Map<
    string,
    { protocol: SessionProtocol; streamName: string; reason: string; at: number }
  >();
  readonly #viewersByStream = new Map<string, number>();
  readonly #metrics: MediaNodeMetrics;

  constructor(metrics: MediaNodeMetrics) {
    this.#metrics = metrics;
  }

  track(session: Session): void {
    this.#sessions.set(session.id, session);
    if (session.protocol === 'whep') this.#countViewer(session.streamName, +1);
    session.on('layerschange', (layer, previous) => {
      // The first layer a viewer gets, and losing every layer, are no switch between two.
      if (layer === undefined || previous === undefined) return;
      this.#metrics.layerSwitches.inc({ direction: layer > previous ? 'up' : 'down' });
    });
    session.once('close', (reason) => {
      this.#sessions.delete(session.id);
      if (REJOIN_REASONS.has(reason)) this.#remember(session, reason);
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

  /**
   * Ends a session by its resource URL parts, or says why it cannot: SESSION_ENDED (the server
   * ended it for a reason the player should re-join on) or SESSION_NOT_FOUND.
   */
  endOrExplain(protocol: SessionProtocol, streamName: string, sessionId: string): void {
    if (this.end(protocol, streamName, sessionId)) return;
    const reason = this.endedReason(protocol, streamName, sessionId);
    if (reason !== undefined) {
      throw new RtccdnError(
        'SESSION_ENDED',
        `the server ended this session (${reason}): ${protocol === 'whep' ? 'play' : 'publish'} again at the same URL`,
        { data: { reason } },
      );
    }
    throw new RtccdnError(
      'SESSION_NOT_FOUND',
      `no ${protocol.toUpperCase()} session ${sessionId} on stream "${streamName}"`,
    );
  }

  /** Why the server ended this session, if it was for a reason the player should re-join on. */
  endedReason(protocol: SessionProtocol, streamName: string, sessionId: string): string | undefined {
    const ended = this.#ended.get(sessionId);
    if (!ended || ended.protocol !== protocol || ended.streamName !== streamName) return undefined;
    return Date.now() - ended.at < ENDED_TTL_MS ? ended.reason : undefined;
  }

  /** Ends every viewer (WHEP) session with `reason`; how many there were. */
  closeViewers(reason: string): number {
    const viewers = [...this.#sessions.values()].filter((one) => one.protocol === 'whep');
    for (const session of viewers) session.close(reason);
    return viewers.length;
  }

  #remember(session: Session, reason: string): void {
    const now = Date.now();
    this.#ended.set(session.id, {
      protocol: session.protocol,
      streamName: session.streamName,
      reason,
      at: now,
    });
    for (const [id, ended] of this.#ended) {
      if (this.#ended.size <= ENDED_MAX && now - ended.at < ENDED_TTL_MS) break;
      this.#ended.delete(id);
    }
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
