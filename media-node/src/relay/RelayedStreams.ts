import { InternalCallError, type InternalClient } from '../../contract/internal-api.js';
import { RENDITION_SEPARATOR } from '../../contract/names.js';
import type { Logger } from '../logger.js';
import type { Stream } from '../media/Stream.js';
import type { WorkerPool } from '../media/WorkerPool.js';
import type { MediaNodeMetrics } from '../metrics.js';
import { IncompatibleSourceError, RelayedStream } from './RelayedStream.js';
import type { PipeListen } from './RelayOut.js';
import { type RelaySource, UpstreamLink } from './UpstreamLink.js';

/** An upstream link that received nothing (RTP or RTCP) for this long is replaced. */
const QUIET_UPSTREAM_MS = 3000;
/**
 * No RTP from the upstream for this long makes us ask the source whether it still serves us.
 * Live video has a packet every ~33 ms; a false alarm (a silent publisher, a stalled event loop)
 * costs one cheap probe, which the source answers.
 */
const DEFAULT_SILENCE_MS = 250;
/** A live node answers a probe in milliseconds; no answer by then counts as gone. */
const PROBE_TIMEOUT_MS = 300;
/** A source that answered while quiet is asked again after this, doubling up to the max. */
const MAX_PROBE_INTERVAL_MS = 2000;
/** How often silence is looked for (a timer over the streams, no I/O). */
const PULSE_MS = 50;
/** While a stream's upstream is lost, a new one is looked for this often. */
const RECOVER_RETRY_MS = 250;
/** A relay request during recovery: a live source answers fast; the dead one must not hold us. */
const RECOVER_OPEN_TIMEOUT_MS = 2000;
/** A rendition whose claim is gone and that no transcoder could make this many times ends. */
const MAX_REMAKE_FAILURES = 3;
/** Nodes found dead are avoided for this long (their registry records expire within it). */
const DEAD_NODE_MEMORY_MS = 10_000;

/** A live stream as the registry knows it: which origin holds it, under which claim. */
export interface LiveStreamRecord {
  name: string;
  nodeId: string;
  internalUrl: string;
  claimId: string;
  /** The claim this one took over from a dead holder: the same stream, moved. */
  replaces?: string | undefined;
}

/** The edge of a region that relays a stream for the others of that region. */
export interface RegionalRelayRecord {
  nodeId: string;
  internalUrl: string;
  claimId: string;
}

/** What RelayedStreams needs from the cluster registry (Redis). */
export interface RelayDirectory {
  lookupStream(name: string): Promise<LiveStreamRecord | undefined>;
  /** With `replaces`: take the lease over from the edge holding it under that claim (found dead). */
  claimRelay(
    region: string,
    name: string,
    options?: { replaces?: string },
  ): Promise<{ acquired: true } | { acquired: false; holder: RegionalRelayRecord }>;
  lookupRelay(region: string, name: string): Promise<RegionalRelayRecord | undefined>;
  releaseRelay(region: string, name: string): Promise<void>;
  /** Whether the node says it is draining (its registry record). */
  nodeDraining(nodeId: string): Promise<boolean>;
}

export interface RelayedStreamsOptions {
  directory: RelayDirectory;
  pool: WorkerPool;
  client: InternalClient;
  pipe: PipeListen;
  self: { nodeId: string; region: string; internalUrl: string };
  /** Pull from an edge of our region that already has the stream instead of its origin. */
  regionalRelay: boolean;
  /** Idle relays (no viewers, no downstream relays) are closed after this long. */
  lingerMs: number;
  /** Viewers of a stream whose publish vanished wait this long for it to come back. */
  sourceLossGraceMs: number;
  fanoutLingerMs: number;
  /** How often relayed streams are checked against the registry. */
  watchIntervalMs?: number;
  /** No RTP from an upstream for this long makes us probe it (default 250 ms). */
  silenceMs?: number;
  /**
   * The node making `name` died: have it made elsewhere if that can be done (a rendition, by
   * another transcoder). Resolves once asked; the new maker's claim then shows in the registry.
   */
  remake?: (name: string, deadNodeId: string) => Promise<void>;
  metrics: MediaNodeMetrics;
  logger: Logger;
}

interface Tracked {
  relayed: RelayedStream;
  /** Regional relay lease held by this node for the stream. */
  holdsRegionalLease: boolean;
  lingerTimer?: NodeJS.Timeout;
  /** Set while the publish is gone and viewers wait (SOURCE_LOSS_GRACE_MS). */
  sourceLostAt?: number;
  /** A relink in progress (one at a time per stream). */
  relinking?: Promise<void>;
  /** Bytes the upstream link had received at the previous check: media still flowing? */
  linkBytes?: number;
  /** Since when the upstream link has received nothing (not even RTCP), if it has gone quiet. */
  quietSince?: number;
  /** The claim last seen in the registry: relinking goes on from it while Redis is down. */
  record: LiveStreamRecord;
  /** Set while the current upstream is known lost (it stopped and did not answer for itself). */
  upstreamLost?: { at: number; nodeId: string; nodeDead: boolean };
  /** Last recovery attempt (performance.now()), while upstreamLost. */
  recoveredAt?: number;
  /** A probe of the quiet upstream in flight. */
  probing?: boolean;
  /** When the quiet upstream may be probed again, and the current interval. */
  nextProbeAt: number;
  probeIntervalMs: number;
  /** A remake (rendition) asked of another node, in flight; and how many failed. */
  remaking?: Promise<void>;
  remakeFailures?: number;
}

/**
 * The streams an edge relays from other nodes, by name. The first viewer of a stream opens
 * the relay (once, however many viewers arrive at the same moment); the stream is kept while
 * anything uses it and for `lingerMs` after.
 *
 * Failover. Every relayed stream's media is watched: when the upstream sends no RTP for
 * `silenceMs`, its source is asked whether it still serves us. A source that answers is kept (a
 * silent publisher, or a relay edge that is failing over itself); one that refuses, does not
 * answer in time or dropped our relay is replaced at once — by the region's relay edge, the
 * origin (taking over the dead relay edge's lease), the origin a publisher moved to (a claim
 * taken over, announced as stream-up), or another transcoder (renditions) — and viewers get a
 * key frame as soon as the new link is up. No registry TTL is waited for. A slower watchdog keeps
 * each relay consistent with the registry: it ends the stream (closing its viewers) when the
 * publish is gone, and follows a regional relay edge that was replaced.
 *
 * Hand-over. A draining edge (scale-down, rollout, SIGTERM) gives up the region's relay leases it
 * holds (`handOver()`) and pulls for its own remaining viewers straight from the origin; edges
 * that pulled through it notice (lease gone, its record draining) and relink — make before
 * break, so their viewers see no freeze — one of them taking the lease, while the draining edge
 * still serves them. Without that they would stay on it until it exits, and fail over then.
 */
export class RelayedStreams {
  readonly #options: RelayedStreamsOptions;
  readonly #tracked = new Map<string, Tracked>();
  readonly #opening = new Map<string, Promise<RelayedStream | undefined>>();
  /** Nodes found dead (refused, or no answer) → until when they are avoided, and how. */
  readonly #deadNodes = new Map<string, { until: number; refused: boolean }>();
  readonly #watchTimer: NodeJS.Timeout;
  readonly #pulseTimer: NodeJS.Timeout;
  readonly #silenceMs: number;
  /** This edge drains: it holds no regional relay lease (see handOver). */
  #handingOver = false;
  #closed = false;

  constructor(options: RelayedStreamsOptions) {
    this.#options = options;
    this.#silenceMs = options.silenceMs ?? DEFAULT_SILENCE_MS;
    this.#watchTimer = setInterval(() => void this.#watch(), options.watchIntervalMs ?? 1000);
    this.#watchTimer.unref();
    this.#pulseTimer = setInterval(() => this.#pulse(), PULSE_MS);
    this.#pulseTimer.unref();
  }

  get(name: string): RelayedStream | undefined {
    return this.#tracked.get(name)?.relayed;
  }

  get streams(): RelayedStream[] {
    return [...this.#tracked.values()].map((tracked) => tracked.relayed);
  }

  /** The local copy of a live stream, relaying it first if needed; undefined if not live. */
  async resolve(name: string): Promise<Stream | undefined> {
    const tracked = this.#tracked.get(name);
    if (tracked && !tracked.relayed.closed) return tracked.relayed.stream;
    let opening = this.#opening.get(name);
    if (!opening) {
      opening = this.#open(name).finally(() => this.#opening.delete(name));
      this.#opening.set(name, opening);
    }
    return (await opening)?.stream;
  }

  /**
   * This edge is draining: it stops being the region's relay edge. The regional leases it holds
   * are released (from now on it takes none, pulling from origins), so that the edges relaying
   * through it move to another relay edge while it still serves them, rather than when it exits.
   * Its own viewers keep their relays. Resolves once the releases are sent.
   */
  async handOver(): Promise<void> {
    const { directory, self, logger } = this.#options;
    this.#handingOver = true;
    const held = [...this.#tracked].filter(([, tracked]) => tracked.holdsRegionalLease);
    await Promise.all(
      held.map(async ([name, tracked]) => {
        tracked.holdsRegionalLease = false;
        await directory.releaseRelay(self.region, name).catch((error: Error) => {
          // Left to expire (its refresh has stopped): the others then follow it on their own.
          logger.warn({ stream: name, err: error }, 'cannot release the relay lease for hand-over');
        });
      }),
    );
    if (held.length > 0) {
      logger.info({ streams: held.map(([name]) => name) }, 'draining: regional relay leases handed over');
    }
  }

  /** The drain was cancelled: this edge may become a regional relay edge again (new relays). */
  resumeRegionalRelay(): void {
    this.#handingOver = false;
  }

  /** The publish of `name` ended (pub/sub): close at once unless viewers may wait for it. */
  onStreamDown(name: string, claimId: string, reason: string): void {
    const tracked = this.#tracked.get(name);
    if (!tracked || tracked.relayed.claimId !== claimId) return;
    this.#sourceLost(name, tracked, `publish ended: ${reason}`);
  }

  /**
   * A claim on `name` was made (pub/sub). One that took over the claim we relay (its holder was
   * found dead by the new holder) is where our stream moved: relink now, before our own silence
   * detection would.
   */
  onStreamUp(name: string, claimId: string, replaces: string | undefined): void {
    const tracked = this.#tracked.get(name);
    if (!tracked || tracked.relayed.closed || replaces === undefined) return;
    if (tracked.relayed.claimId !== replaces || claimId === replaces) return;
    const link = tracked.relayed.link;
    // Pulling from the region's relay edge: it follows the move itself (the watchdog adopts it).
    if (link && !link.closed && link.source.nodeId !== tracked.record.nodeId && !tracked.upstreamLost) return;
    this.#upstreamLost(name, tracked, tracked.record.nodeId, { dead: true, refused: true }, 'publish moved');
  }

  async #open(name: string): Promise<RelayedStream | undefined> {
    const { directory, metrics, logger } = this.#options;
    const started = performance.now();
    const record = await directory.lookupStream(name);
    if (!record || this.#closed) return undefined;
    let sourceKind = 'origin';
    try {
      const { link, holdsRegionalLease } = await this.#link(name, record);
      sourceKind = link.source.nodeId === record.nodeId ? 'origin' : 'regional-edge';
      const relayed = await RelayedStream.create({
        name,
        worker: this.#options.pool.leastLoaded(),
        link,
        claimId: record.claimId,
        fanoutLingerMs: this.#options.fanoutLingerMs,
        logger,
      }).catch((error: Error) => {
        link.close('relay setup failed');
        throw error;
      });
      this.#track(name, relayed, holdsRegionalLease, record);
      metrics.relaySetupSeconds.observe(
        { source: sourceKind, result: 'ok' },
        (performance.now() - started) / 1000,
      );
      return relayed;
    } catch (error) {
      metrics.relaySetupSeconds.observe(
        { source: sourceKind, result: 'error' },
        (performance.now() - started) / 1000,
      );
      throw error;
    }
  }

  /**
   * Opens an upstream link for `name`: from the region's relay edge when there is one (and it
   * answers), otherwise from the origin — taking the regional lease if it is free, or if its
   * holder is dead.
   */
  async #link(
    name: string,
    record: LiveStreamRecord,
    timeoutMs?: number,
  ): Promise<{ link: UpstreamLink; holdsRegionalLease: boolean }> {
    const { directory, self, regionalRelay, logger } = this.#options;
    const origin: RelaySource = { nodeId: record.nodeId, internalUrl: record.internalUrl };
    if (!regionalRelay || record.nodeId === self.nodeId || this.#handingOver) {
      return { link: await this.#openLink(name, origin, timeoutMs), holdsRegionalLease: false };
    }
    let lease = await directory.claimRelay(self.region, name);
    if (
      !lease.acquired &&
      lease.holder.nodeId !== self.nodeId &&
      this.#deadNodes.get(lease.holder.nodeId)?.refused
    ) {
      // The region's relay edge is gone (its port refused us): take its lease rather than wait its TTL.
      lease = await directory.claimRelay(self.region, name, { replaces: lease.holder.claimId });
    }
    if (lease.acquired || lease.holder.nodeId === self.nodeId) {
      try {
        return { link: await this.#openLink(name, origin, timeoutMs), holdsRegionalLease: true };
      } catch (error) {
        await directory.releaseRelay(self.region, name).catch(() => undefined);
        throw error;
      }
    }
    const holder = lease.holder;
    try {
      if (this.#isDead(holder.nodeId)) throw new Error(`${holder.nodeId} was found dead`);
      return { link: await this.#openLink(name, holder, timeoutMs), holdsRegionalLease: false };
    } catch (error) {
      // The region's relay edge does not answer (dying, or lost the stream): go to the origin,
      // as the region's relay edge if it is gone for sure.
      logger.warn(
        { stream: name, regionalRelay: holder.nodeId, err: error },
        'regional relay edge unavailable; pulling from the origin',
      );
      this.#noteUnreachable(holder.nodeId, error);
      if (this.#deadNodes.get(holder.nodeId)?.refused) {
        const taken = await directory
          .claimRelay(self.region, name, { replaces: holder.claimId })
          .catch(() => undefined);
        if (taken?.acquired) {
          try {
            return { link: await this.#openLink(name, origin, timeoutMs), holdsRegionalLease: true };
          } catch (openError) {
            await directory.releaseRelay(self.region, name).catch(() => undefined);
            throw openError;
          }
        }
      }
      return { link: await this.#openLink(name, origin, timeoutMs), holdsRegionalLease: false };
    }
  }

  #openLink(name: string, source: RelaySource, timeoutMs?: number): Promise<UpstreamLink> {
    const { pool, client, pipe, self, logger } = this.#options;
    return UpstreamLink.open({
      streamName: name,
      source,
      worker: pool.leastLoaded(),
      client,
      pipe,
      selfNodeId: self.nodeId,
      ...(timeoutMs === undefined ? {} : { timeoutMs }),
      logger,
    }).catch((error: unknown) => {
      this.#noteUnreachable(source.nodeId, error);
      throw error;
    });
  }

  #track(name: string, relayed: RelayedStream, holdsRegionalLease: boolean, record: LiveStreamRecord): void {
    const { metrics, lingerMs, directory, self, logger } = this.#options;
    const tracked: Tracked = {
      relayed,
      holdsRegionalLease,
      record,
      nextProbeAt: 0,
      probeIntervalMs: this.#silenceMs,
    };
    this.#tracked.set(name, tracked);
    metrics.relaysIn.inc();
    const { stream } = relayed;
    const scheduleLinger = () => {
      clearTimeout(tracked.lingerTimer);
      tracked.lingerTimer = setTimeout(() => relayed.close('idle'), lingerMs);
      tracked.lingerTimer.unref();
    };
    stream.on('idle', scheduleLinger);
    stream.on('inuse', () => {
      clearTimeout(tracked.lingerTimer);
      tracked.lingerTimer = undefined;
    });
    // The first viewer attaches right after resolve(); if none does, linger from now.
    if (stream.references === 0) scheduleLinger();
    relayed.once('close', (reason) => {
      clearTimeout(tracked.lingerTimer);
      if (this.#tracked.get(name) === tracked) this.#tracked.delete(name);
      metrics.relaysIn.dec();
      metrics.relayedStreamsClosed.inc({ reason: reason.split(':')[0] ?? reason });
      if (tracked.holdsRegionalLease) void directory.releaseRelay(self.region, name).catch(() => undefined);
      logger.info({ stream: name, reason }, 'relayed stream closed');
    });
  }

  #sourceLost(name: string, tracked: Tracked, reason: string): void {
    const { sourceLossGraceMs, logger } = this.#options;
    if (sourceLossGraceMs <= 0) {
      tracked.relayed.close(`source-lost: ${reason}`);
      return;
    }
    if (tracked.sourceLostAt === undefined) {
      tracked.sourceLostAt = Date.now();
      tracked.relayed.link?.close(reason);
      logger.warn({ stream: name, reason, graceMs: sourceLossGraceMs }, 'publish gone; viewers wait for it');
    }
  }

  // --- failover: media silence → probe → relink ---------------------------------------------------

  /** Looks for quiet upstreams and keeps recovering lost ones (runs every PULSE_MS; no I/O itself). */
  #pulse(): void {
    if (this.#closed) return;
    const now = performance.now();
    for (const [name, tracked] of this.#tracked) {
      const { relayed } = tracked;
      if (relayed.closed || tracked.relinking) continue;
      if (tracked.upstreamLost) {
        if (now - (tracked.recoveredAt ?? 0) >= RECOVER_RETRY_MS) void this.#recover(name, tracked);
        continue;
      }
      if (relayed.quietForMs < this.#silenceMs) {
        tracked.probeIntervalMs = this.#silenceMs;
        tracked.nextProbeAt = 0;
        continue;
      }
      if (tracked.sourceLostAt !== undefined || tracked.probing || now < tracked.nextProbeAt) continue;
      void this.#probe(name, tracked);
    }
  }

  /** The upstream went quiet: does its source still serve us? */
  async #probe(name: string, tracked: Tracked): Promise<void> {
    const link = tracked.relayed.link;
    if (!link || link.closed) {
      this.#upstreamLost(
        name,
        tracked,
        tracked.record.nodeId,
        { dead: false, refused: false },
        'upstream link closed',
      );
      return;
    }
    tracked.probing = true;
    try {
      await link.probe(PROBE_TIMEOUT_MS);
      // It answers and serves us: the source itself is quiet (a silent publisher, or a relay
      // edge failing over itself). Ask again later, less often while it stays quiet.
      tracked.nextProbeAt = performance.now() + tracked.probeIntervalMs;
      tracked.probeIntervalMs = Math.min(2 * tracked.probeIntervalMs, MAX_PROBE_INTERVAL_MS);
    } catch (error) {
      if (tracked.relayed.link !== link || tracked.relayed.closed) return; // replaced meanwhile
      const unreachable = error instanceof InternalCallError ? error.unreachable : 'failed';
      this.#upstreamLost(
        name,
        tracked,
        link.source.nodeId,
        { dead: unreachable !== undefined, refused: unreachable === 'refused' },
        `upstream ${link.source.nodeId} silent and ${unreachable ? `unreachable (${unreachable})` : (error as Error).message}`,
      );
    } finally {
      tracked.probing = false;
    }
  }

  #upstreamLost(
    name: string,
    tracked: Tracked,
    nodeId: string,
    verdict: { dead: boolean; refused: boolean },
    reason: string,
  ): void {
    if (verdict.dead) this.#markDead(nodeId, verdict.refused);
    if (!tracked.upstreamLost) {
      tracked.upstreamLost = { at: Date.now(), nodeId, nodeDead: verdict.dead };
      this.#options.logger.warn({ stream: name, upstream: nodeId, reason }, 'upstream lost; relinking now');
    }
    void this.#recover(name, tracked);
  }

  /**
   * One attempt to feed a stream whose upstream is lost from a live source: the claim as the
   * registry has it now (or as last seen, while Redis is down). Retried by the pulse until it
   * succeeds or the publish is found gone.
   */
  #recover(name: string, tracked: Tracked): Promise<void> {
    if (tracked.relinking) return tracked.relinking;
    tracked.recoveredAt = performance.now();
    return this.#exclusive(tracked, async () => {
      const { directory } = this.#options;
      let record: LiveStreamRecord | undefined;
      try {
        record = await directory.lookupStream(name);
      } catch {
        record = tracked.record; // registry down: the source we know of may still be alive
      }
      const rendition = Boolean(this.#options.remake) && isRendition(name);
      if (!record) {
        // Nobody holds the name any more and our source is gone. A rendition is asked of a
        // transcoder again (its maker died; the claim expired); a publish ended.
        if (rendition && (tracked.remakeFailures ?? 0) < MAX_REMAKE_FAILURES) {
          this.#remake(name, tracked, tracked.upstreamLost?.nodeId ?? tracked.record.nodeId);
          return;
        }
        const { sourceLossGraceMs } = this.#options;
        if (tracked.sourceLostAt !== undefined && Date.now() - tracked.sourceLostAt >= sourceLossGraceMs) {
          tracked.relayed.close('source-lost: publish did not come back');
        } else {
          this.#sourceLost(name, tracked, 'publish no longer registered');
        }
        return;
      }
      const dead = this.#isDead(record.nodeId) ? this.#deadNodes.get(record.nodeId) : undefined;
      if (dead && (dead.refused || rendition)) {
        // The claim still names a node that is gone (it refused us; a rendition's maker that does
        // not answer). A rendition is made elsewhere; a publish waits for its publisher to move
        // (a claim taken over) or for the claim to expire (then it ends). A source that only did
        // not answer in time may be alive but slow: it is tried again like any other.
        if (rendition) this.#remake(name, tracked, record.nodeId);
        return;
      }
      if (record.claimId === tracked.relayed.claimId) {
        await this.#moveTo(name, tracked, record, 'upstream lost', RECOVER_OPEN_TIMEOUT_MS);
      } else if (this.#isMove(name, tracked, record)) {
        await this.#moveTo(name, tracked, record, 'moved', RECOVER_OPEN_TIMEOUT_MS);
      } else if (this.#options.sourceLossGraceMs <= 0 && tracked.sourceLostAt === undefined) {
        tracked.relayed.close('source-lost: publish restarted');
      } else {
        await this.#moveTo(name, tracked, record, 'republished', RECOVER_OPEN_TIMEOUT_MS);
      }
    });
  }

  /**
   * Asks (once at a time) for the rendition `name` to be made by another transcoder than
   * `deadNodeId`, which takes the claim over (or finds it free), then looks again at once.
   * Failures are logged once; a rendition whose claim is gone ends after a few (see #recover).
   */
  #remake(name: string, tracked: Tracked, deadNodeId: string): void {
    const { remake, logger } = this.#options;
    if (!remake || tracked.remaking) return;
    tracked.remaking = remake(name, deadNodeId)
      .then(() => {
        tracked.recoveredAt = 0; // look again at once
      })
      .catch((error: Error) => {
        tracked.remakeFailures = (tracked.remakeFailures ?? 0) + 1;
        const level = tracked.remakeFailures === 1 ? 'warn' : 'debug';
        logger[level]({ stream: name, err: error }, 'cannot have the rendition made elsewhere; retrying');
      })
      .finally(() => {
        tracked.remaking = undefined;
      });
  }

  /**
   * Whether a claim other than ours is our stream moved — a dead holder's claim taken over, a
   * rendition made elsewhere, or a new claim after our source node died (it could say nothing) —
   * rather than a publish that ended (stream-down) and started again.
   */
  #isMove(name: string, tracked: Tracked, record: LiveStreamRecord): boolean {
    return (
      record.replaces === tracked.relayed.claimId ||
      isRendition(name) ||
      tracked.upstreamLost?.nodeDead === true
    );
  }

  #isDead(nodeId: string): boolean {
    const dead = this.#deadNodes.get(nodeId);
    if (dead && dead.until < Date.now()) this.#deadNodes.delete(nodeId);
    return dead !== undefined && dead.until >= Date.now();
  }

  #markDead(nodeId: string, refused: boolean): void {
    if (nodeId === this.#options.self.nodeId) return;
    const previous = this.#deadNodes.get(nodeId);
    this.#deadNodes.set(nodeId, {
      until: Date.now() + DEAD_NODE_MEMORY_MS,
      refused: refused || (previous?.refused === true && previous.until >= Date.now()),
    });
  }

  /** A node we could not reach at all is avoided for a while (as a source and a relay edge). */
  #noteUnreachable(nodeId: string, error: unknown): void {
    if (error instanceof InternalCallError && error.unreachable) {
      this.#markDead(nodeId, error.unreachable === 'refused');
    }
  }

  // --- watchdog: consistency with the registry ----------------------------------------------------

  /** One pass of the watchdog over every relayed stream. */
  async #watch(): Promise<void> {
    if (this.#closed) return;
    await Promise.all(
      [...this.#tracked.entries()].map(([name, tracked]) =>
        this.#check(name, tracked).catch((error: Error) =>
          // Registry unreachable: keep relaying what we have; check again next round.
          this.#options.logger.debug({ stream: name, err: error }, 'relay check skipped'),
        ),
      ),
    );
  }

  async #check(name: string, tracked: Tracked): Promise<void> {
    const { directory, self, sourceLossGraceMs } = this.#options;
    // A lost upstream is the failover path's (#recover), which also ends the stream if need be.
    if (tracked.relinking || tracked.relayed.closed || tracked.upstreamLost) return;
    const { relayed } = tracked;
    // Media still arriving means the source lives, whatever the registry says right now (Redis
    // restarted empty and the origin has not re-registered yet, a lease between refreshes).
    // Sampled before the lookup, so that checks failing while Redis is down keep the baseline.
    const flowing = await this.#mediaFlowing(tracked);
    const record = await directory.lookupStream(name);
    if (tracked.relinking || relayed.closed || tracked.upstreamLost) return; // the failover path got there meanwhile
    if (!record && flowing) return;
    if (!record) {
      if (tracked.sourceLostAt !== undefined && Date.now() - tracked.sourceLostAt >= sourceLossGraceMs) {
        relayed.close('source-lost: publish did not come back');
        return;
      }
      this.#sourceLost(name, tracked, 'publish no longer registered');
      return;
    }
    tracked.record = record;
    const link = relayed.link;
    if (record.claimId !== relayed.claimId) {
      // The same stream moved (a dead holder's claim taken over; a rendition made elsewhere)
      // or was published again after it ended.
      const moved = this.#isMove(name, tracked, record);
      if (moved && link && !link.closed && link.source.nodeId !== record.nodeId && !tracked.upstreamLost) {
        // We pull from the region's relay edge, which follows the move itself.
        if (flowing) relayed.adoptClaim(record.claimId);
        return;
      }
      if (!moved && sourceLossGraceMs <= 0 && tracked.sourceLostAt === undefined) {
        relayed.close('source-lost: publish restarted');
        return;
      }
      await this.#relink(name, tracked, record, moved ? 'moved' : 'republished');
      return;
    }
    if (!link || link.closed) {
      await this.#relink(name, tracked, record, 'upstream link lost');
      return;
    }
    // The source stopped feeding us without a word (it reaped our relay, lost its copy...):
    // nothing at all, not even its RTCP reports, for a few seconds.
    tracked.quietSince = flowing ? undefined : (tracked.quietSince ?? Date.now());
    if (tracked.quietSince !== undefined && Date.now() - tracked.quietSince > QUIET_UPSTREAM_MS) {
      await this.#relink(name, tracked, record, 'upstream went quiet');
      return;
    }
    if (link.source.nodeId !== record.nodeId) {
      // We pull from the region's relay edge: follow it if it is gone or was replaced, or if it
      // handed the lease over (it drains). A lease merely missing while media flows is Redis
      // restarted empty: the relay edge takes it again with its next heartbeat.
      const lease = await directory.lookupRelay(self.region, name);
      if (lease && lease.nodeId !== link.source.nodeId) {
        await this.#relink(name, tracked, record, 'regional relay edge gone');
      } else if (!lease && (await directory.nodeDraining(link.source.nodeId))) {
        await this.#relink(name, tracked, record, 'regional relay edge draining');
      } else if (!lease && !flowing) {
        await this.#relink(name, tracked, record, 'regional relay edge gone');
      }
    }
  }

  async #mediaFlowing(tracked: Tracked): Promise<boolean> {
    const link = tracked.relayed.link;
    if (!link || link.closed) return false;
    const bytes = await link.bytesReceived().catch(() => 0);
    const flowing = tracked.linkBytes !== undefined && bytes > tracked.linkBytes;
    tracked.linkBytes = bytes;
    return flowing;
  }

  #relink(name: string, tracked: Tracked, record: LiveStreamRecord, reason: string): Promise<void> {
    return this.#exclusive(tracked, () => this.#moveTo(name, tracked, record, reason));
  }

  /** Runs `work` as the stream's one relink in progress. */
  #exclusive(tracked: Tracked, work: () => Promise<void>): Promise<void> {
    if (tracked.relinking) return tracked.relinking;
    tracked.relinking = work().finally(() => {
      tracked.relinking = undefined;
    });
    return tracked.relinking;
  }

  /** Feeds the stream from a new link to `record`'s stream (its relay edge or its origin). */
  async #moveTo(
    name: string,
    tracked: Tracked,
    record: LiveStreamRecord,
    reason: string,
    timeoutMs?: number,
  ): Promise<void> {
    const { metrics, logger } = this.#options;
    try {
      const { link, holdsRegionalLease } = await this.#link(name, record, timeoutMs);
      try {
        await tracked.relayed.attach(link, record.claimId);
      } catch (error) {
        link.close('incompatible');
        if (error instanceof IncompatibleSourceError) {
          tracked.relayed.close(`source-lost: ${error.message}`);
          return;
        }
        throw error;
      }
      tracked.holdsRegionalLease = holdsRegionalLease;
      tracked.record = record;
      tracked.sourceLostAt = undefined;
      tracked.linkBytes = undefined;
      tracked.quietSince = undefined;
      const lostFor = tracked.upstreamLost && Date.now() - tracked.upstreamLost.at;
      tracked.upstreamLost = undefined;
      tracked.remakeFailures = undefined;
      tracked.probeIntervalMs = this.#silenceMs;
      tracked.nextProbeAt = 0;
      metrics.upstreamSwitches.inc({ reason });
      logger.info(
        { stream: name, upstream: link.source.nodeId, reason, lostForMs: lostFor },
        'relay moved to a new upstream',
      );
    } catch (error) {
      // Logged at debug while the failover path retries every RECOVER_RETRY_MS.
      const level = tracked.upstreamLost ? 'debug' : 'warn';
      logger[level]({ stream: name, reason, err: error }, 'cannot move relay to a new upstream; retrying');
    }
  }

  close(reason: string): void {
    if (this.#closed) return;
    this.#closed = true;
    clearInterval(this.#watchTimer);
    clearInterval(this.#pulseTimer);
    for (const tracked of [...this.#tracked.values()]) tracked.relayed.close(reason);
  }
}

/** Renditions ({stream}~{profile}) are made by some transcoder: any maker's copy is the same stream. */
function isRendition(name: string): boolean {
  return name.includes(RENDITION_SEPARATOR);
}
