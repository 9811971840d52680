import type { InternalClient } from '../../contract/internal-api.js';
import type { Logger } from '../logger.js';
import type { Stream } from '../media/Stream.js';
import type { WorkerPool } from '../media/WorkerPool.js';
import type { MediaNodeMetrics } from '../metrics.js';
import { IncompatibleSourceError, RelayedStream } from './RelayedStream.js';
import type { PipeListen } from './RelayOut.js';
import { type RelaySource, UpstreamLink } from './UpstreamLink.js';

/** An upstream link that received nothing (RTP or RTCP) for this long is replaced. */
const QUIET_UPSTREAM_MS = 3000;

/** A live stream as the registry knows it: which origin holds it, under which claim. */
export interface LiveStreamRecord {
  name: string;
  nodeId: string;
  internalUrl: string;
  claimId: string;
}

/** The edge of a region that relays a stream for the others of that region. */
export interface RegionalRelayRecord {
  nodeId: string;
  internalUrl: string;
}

/** What RelayedStreams needs from the cluster registry (Redis). */
export interface RelayDirectory {
  lookupStream(name: string): Promise<LiveStreamRecord | undefined>;
  claimRelay(
    region: string,
    name: string,
  ): Promise<{ acquired: true } | { acquired: false; holder: RegionalRelayRecord }>;
  lookupRelay(region: string, name: string): Promise<RegionalRelayRecord | undefined>;
  releaseRelay(region: string, name: string): Promise<void>;
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
}

/**
 * The streams an edge relays from other nodes, by name. The first viewer of a stream opens
 * the relay (once, however many viewers arrive at the same moment); the stream is kept while
 * anything uses it and for `lingerMs` after. A watchdog keeps each relay pointed at a live
 * source: it follows a regional relay edge that died or a publish that moved, and ends the
 * stream (closing its viewers) when the publish is gone.
 */
export class RelayedStreams {
  readonly #options: RelayedStreamsOptions;
  readonly #tracked = new Map<string, Tracked>();
  readonly #opening = new Map<string, Promise<RelayedStream | undefined>>();
  readonly #watchTimer: NodeJS.Timeout;
  #closed = false;

  constructor(options: RelayedStreamsOptions) {
    this.#options = options;
    this.#watchTimer = setInterval(() => void this.#watch(), options.watchIntervalMs ?? 1000);
    this.#watchTimer.unref();
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

  /** The publish of `name` ended (pub/sub): close at once unless viewers may wait for it. */
  onStreamDown(name: string, claimId: string, reason: string): void {
    const tracked = this.#tracked.get(name);
    if (!tracked || tracked.relayed.claimId !== claimId) return;
    this.#sourceLost(name, tracked, `publish ended: ${reason}`);
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
      this.#track(name, relayed, holdsRegionalLease);
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
   * answers), otherwise from the origin — taking the regional lease if it is free.
   */
  async #link(
    name: string,
    record: LiveStreamRecord,
  ): Promise<{ link: UpstreamLink; holdsRegionalLease: boolean }> {
    const { directory, self, regionalRelay, logger } = this.#options;
    const origin: RelaySource = { nodeId: record.nodeId, internalUrl: record.internalUrl };
    if (!regionalRelay || record.nodeId === self.nodeId) {
      return { link: await this.#openLink(name, origin), holdsRegionalLease: false };
    }
    const lease = await directory.claimRelay(self.region, name);
    if (lease.acquired || lease.holder.nodeId === self.nodeId) {
      try {
        return { link: await this.#openLink(name, origin), holdsRegionalLease: true };
      } catch (error) {
        await directory.releaseRelay(self.region, name).catch(() => undefined);
        throw error;
      }
    }
    try {
      return { link: await this.#openLink(name, lease.holder), holdsRegionalLease: false };
    } catch (error) {
      // The region's relay edge does not answer (dying, or lost the stream): go to the origin.
      logger.warn(
        { stream: name, regionalRelay: lease.holder.nodeId, err: error },
        'regional relay edge unavailable; pulling from the origin',
      );
      return { link: await this.#openLink(name, origin), holdsRegionalLease: false };
    }
  }

  #openLink(name: string, source: RelaySource): Promise<UpstreamLink> {
    const { pool, client, pipe, self, logger } = this.#options;
    return UpstreamLink.open({
      streamName: name,
      source,
      worker: pool.leastLoaded(),
      client,
      pipe,
      selfNodeId: self.nodeId,
      logger,
    });
  }

  #track(name: string, relayed: RelayedStream, holdsRegionalLease: boolean): void {
    const { metrics, lingerMs, directory, self, logger } = this.#options;
    const tracked: Tracked = { relayed, holdsRegionalLease };
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
    if (tracked.relinking || tracked.relayed.closed) return;
    const { relayed } = tracked;
    // Media still arriving means the source lives, whatever the registry says right now (Redis
    // restarted empty and the origin has not re-registered yet, a lease between refreshes).
    // Sampled before the lookup, so that checks failing while Redis is down keep the baseline.
    const flowing = await this.#mediaFlowing(tracked);
    const record = await directory.lookupStream(name);
    if (!record && flowing) return;
    if (!record) {
      if (tracked.sourceLostAt !== undefined && Date.now() - tracked.sourceLostAt >= sourceLossGraceMs) {
        relayed.close('source-lost: publish did not come back');
        return;
      }
      this.#sourceLost(name, tracked, 'publish no longer registered');
      return;
    }
    if (record.claimId !== relayed.claimId) {
      // Republished (possibly on another origin).
      if (sourceLossGraceMs <= 0 && tracked.sourceLostAt === undefined) {
        relayed.close('source-lost: publish restarted');
        return;
      }
      await this.#relink(name, tracked, record, 'republished');
      return;
    }
    const link = relayed.link;
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
      // We pull from the region's relay edge: follow it if it is gone or was replaced.
      const lease = await directory.lookupRelay(self.region, name);
      if ((!lease && !flowing) || (lease && lease.nodeId !== link.source.nodeId)) {
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
    const { metrics, logger } = this.#options;
    tracked.relinking = (async () => {
      try {
        const { link, holdsRegionalLease } = await this.#link(name, record);
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
        tracked.sourceLostAt = undefined;
        tracked.linkBytes = undefined;
        tracked.quietSince = undefined;
        metrics.upstreamSwitches.inc({ reason });
        logger.info({ stream: name, upstream: link.source.nodeId, reason }, 'relay moved to a new upstream');
      } catch (error) {
        logger.warn({ stream: name, reason, err: error }, 'cannot move relay to a new upstream; retrying');
      } finally {
        tracked.relinking = undefined;
      }
    })();
    return tracked.relinking;
  }

  close(reason: string): void {
    if (this.#closed) return;
    this.#closed = true;
    clearInterval(this.#watchTimer);
    for (const tracked of [...this.#tracked.values()]) tracked.relayed.close(reason);
  }
}
