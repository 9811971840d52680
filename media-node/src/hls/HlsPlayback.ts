import { RtccdnError } from '../../contract/errors.js';
import type { AccessController, Grant } from '../acl/AccessController.js';
import type { HlsConfig } from '../config.js';
import { assertPublishedName } from '../ingest/Publishing.js';
import type { Logger } from '../logger.js';
import type { WorkerPool } from '../media/WorkerPool.js';
import type { MediaNodeMetrics } from '../metrics.js';
import type { NodeState } from '../NodeState.js';
import type { StreamResolver } from '../streams/LocalStreams.js';
import type { Profile } from '../transcode/profiles.js';
import {
  HLS_CODECS,
  HLS_MAX_BITRATE,
  HLS_SEGMENT_SECONDS,
  HlsJob,
  MEDIA_PLAYLIST,
  SOURCE_VARIANT,
} from './HlsJob.js';
import { type HlsUrlClaims, HlsUrlSigner } from './HlsUrlSigner.js';
import { fileName, type LlHlsPlaylist, parsePlaylistFile } from './LlHlsPlaylist.js';

/** How long a media playlist request waits for a new packager's first segment. */
const FIRST_SEGMENT_WAIT_MS = 10_000;
/** A blocked request re-checks its grant at least this often (revocation cuts it within 1 s). */
const GRANT_RECHECK_MS = 250;
/** Signed part and segment URLs expire on multiples of this: the same URL across reloads. */
const EXPIRY_STEP_MS = 5000;

/** A blocking playlist reload (RFC 8216bis 6.2.5.2): `_HLS_msn`, and `_HLS_part` if given. */
export interface BlockingReload {
  msn: number;
  part: number | undefined;
}

export interface HlsPlaybackOptions {
  config: HlsConfig;
  /** The rendition ladder (PROFILES): each rung is a variant besides the source. */
  profiles: readonly Profile[];
  state: NodeState;
  pool: WorkerPool;
  access: AccessController;
  /** The local copy of a live stream: published here or relayed here. */
  sources: StreamResolver;
  /** CLUSTER_SECRET in a CDN (any edge verifies any edge's URLs); absent standalone. */
  clusterSecret: string | undefined;
  /** This node's id in a CDN (named in the URLs it hands out: requests come back to it); absent standalone. */
  nodeId: string | undefined;
  metrics: MediaNodeMetrics;
  logger: Logger;
}

/**
 * HLS playback on an edge: the multivariant playlist admits the player with the same access key
 * and AccessController as WHEP and hands it signed URLs (HlsUrlSigner); every later playlist and
 * segment request verifies its URL and checks the key against the ACL again, so a revoked,
 * deleted or expired key stops the player at its next request. Packagers (HlsJob: FFmpeg) start
 * on the first request for a stream and stop when nobody asked for anything for HLS_LINGER_MS.
 * They run here, on the edge that serves the player: it has the stream already (published or
 * relayed), the segments never cross the network twice, and edges scale with viewers.
 */
export class HlsPlayback {
  readonly signer: HlsUrlSigner;
  readonly #options: HlsPlaybackOptions;
  readonly #jobs = new Map<string, HlsJob>();
  readonly #starting = new Map<string, Promise<HlsJob>>();
  readonly #sweep: NodeJS.Timeout;
  readonly #logger: Logger;
  /** The ladder's rungs packaged as variants (not one named like the source's variant). */
  readonly #ladder: readonly Profile[];
  /** The drain deadline passed: refuse every HLS request while the node drains. */
  #drainEnded = false;
  #closed = false;

  constructor(options: HlsPlaybackOptions) {
    this.#options = options;
    this.#logger = options.logger.child({ component: 'hls' });
    this.#ladder = options.profiles.filter((profile) => profile.name !== SOURCE_VARIANT);
    if (this.#ladder.length < options.profiles.length) {
      this.#logger.warn(
        `profile "${SOURCE_VARIANT}" is not packaged for HLS: the name is the source's variant`,
      );
    }
    this.signer = options.clusterSecret
      ? HlsUrlSigner.fromClusterSecret(options.clusterSecret)
      : HlsUrlSigner.random();
    this.#sweep = setInterval(() => this.#stopUnwatched(), Math.min(1000, options.config.lingerMs));
    this.#sweep.unref();
  }

  get jobs(): ReadonlyMap<string, HlsJob> {
    return this.#jobs;
  }

  /**
   * The multivariant playlist of `stream` for a player presenting `key`: admission as for WHEP
   * (401/403/429/503), the stream must be live (404), its packager is started.
   */
  async multivariant(stream: string, key: string | undefined, clientIp: string): Promise<string> {
    const { state, access, config } = this.#options;
    state.assertAcceptingViewers();
    assertPublishedName(stream);
    const grant = access.admit(stream, key, clientIp);
    (await this.#job(stream)).lastUsedAt = Date.now();
    const claims: HlsUrlClaims = {
      grantId: HlsUrlSigner.newGrantId(),
      expiresAt: Date.now() + config.playlistUrlTtlMs,
      keyId: grant.keyId,
      keyFingerprint: grant.keyHash === undefined ? undefined : this.signer.fingerprint(grant.keyHash),
      nodeId: this.#options.nodeId,
    };
    this.#logger.info({ stream, keyId: grant.keyId, grant: claims.grantId, clientIp }, 'hls player admitted');
    const media = (variant: string) =>
      `${variant}/${MEDIA_PLAYLIST}?t=${this.signer.sign(resource(stream, variant, MEDIA_PLAYLIST), claims)}`;
    return [
      '#EXTM3U',
      '#EXT-X-VERSION:7',
      '#EXT-X-INDEPENDENT-SEGMENTS',
      `#EXT-X-STREAM-INF:BANDWIDTH=${HLS_MAX_BITRATE},CODECS="${HLS_CODECS}"`,
      media(SOURCE_VARIANT),
      ...this.#ladder.flatMap((profile) => [
        `#EXT-X-STREAM-INF:BANDWIDTH=${Math.round(profile.bitrate * 1.1)},CODECS="${HLS_CODECS}",RESOLUTION=${profile.width}x${profile.height},FRAME-RATE=${profile.fps}`,
        media(profile.name),
      ]),
      '',
    ].join('\n');
  }

  /**
   * The other edge of the CDN whose packager serves the player of this signed URL (it answered
   * the multivariant playlist), or undefined: this edge, standalone, or a URL that does not
   * verify (served here, where it is refused with the reason). Only the signature and expiry are
   * checked here; the holder checks the grant.
   */
  holderOf(stream: string, variant: string, file: string, token: string | undefined): string | undefined {
    const self = this.#options.nodeId;
    if (self === undefined) return undefined;
    let claims: HlsUrlClaims;
    try {
      claims = this.signer.verify(resource(stream, variant, file), token);
    } catch {
      return undefined;
    }
    return claims.nodeId === undefined || claims.nodeId === self ? undefined : claims.nodeId;
  }

  /**
   * The media playlist of a variant, its URLs signed for the same grant (short-lived), after the
   * URL and the grant are checked. A packager stopped meanwhile (or never started on this edge)
   * is started again: the player holds a valid grant. With `reload` (a blocking playlist reload,
   * `_HLS_msn`/`_HLS_part`) the answer waits until the playlist holds that part.
   */
  async mediaPlaylist(
    stream: string,
    variant: string,
    token: string | undefined,
    clientIp: string,
    reload?: BlockingReload,
  ): Promise<string> {
    const claims = this.#authorize(stream, variant, MEDIA_PLAYLIST, token, clientIp);
    let job: HlsJob | undefined;
    let playlist: LlHlsPlaylist | undefined;
    // A packager whose FFmpeg failed before its first segment (e.g. a UDP port taken between
    // picking it and FFmpeg binding it, on a busy machine) is replaced once, not reported as
    // "no segment" to a player that would give up.
    for (let attempt = 0; attempt < 2 && playlist === undefined; attempt++) {
      job = await this.#job(stream);
      job.lastUsedAt = Date.now();
      playlist = await job.waitForPlaylist(variant, FIRST_SEGMENT_WAIT_MS);
      if (!job.closed) break;
    }
    if (!job || !playlist) {
      throw new RtccdnError('STREAM_NOT_LIVE', `stream "${stream}" has no HLS segment yet; try again`, {
        retryAfterMs: 1000,
      });
    }
    if (reload) {
      const newest = playlist.lastPart?.msn ?? 0;
      if (reload.msn > newest + 2) {
        throw new RtccdnError(
          'INVALID_REQUEST',
          `_HLS_msn=${reload.msn} is more than two segments ahead of the playlist (newest ${newest})`,
        );
      }
      const ready = playlist;
      await this.#block(
        job,
        ready,
        () => ready.satisfies(reload.msn, reload.part),
        () => this.#authorize(stream, variant, MEDIA_PLAYLIST, token, clientIp),
      );
    }
    if (job.closed) {
      throw new RtccdnError('STREAM_NOT_LIVE', `HLS of "${stream}" stopped; try again`, {
        retryAfterMs: 1000,
      });
    }
    const now = Date.now();
    const segmentClaims: HlsUrlClaims = {
      ...claims,
      // Rounded up to EXPIRY_STEP_MS: a part's URL stays the same from one reload to the next.
      expiresAt: Math.min(
        claims.expiresAt,
        Math.ceil((now + this.#options.config.segmentUrlTtlMs) / EXPIRY_STEP_MS) * EXPIRY_STEP_MS,
      ),
    };
    return playlist.render((file) => {
      const name = fileName(file);
      return `${name}?t=${this.signer.sign(resource(stream, variant, name), segmentClaims)}`;
    });
  }

  /**
   * The init section, a part or a segment, after its URL and grant are checked (404 once it left
   * the playlist). The part the preload hint names (or one just after it) is answered once it is
   * complete: the request waits for it.
   */
  async file(
    stream: string,
    variant: string,
    name: string,
    token: string | undefined,
    clientIp: string,
  ): Promise<Buffer> {
    const file = parsePlaylistFile(name);
    if (!file) throw notFound(`no HLS file "${name}"`);
    this.#authorize(stream, variant, name, token, clientIp);
    const job = this.#jobs.get(stream);
    const playlist = job?.playlist(variant);
    const gone = () => notFound(`HLS file "${name}" of "${stream}" is not (or no longer) available`);
    if (!job || !playlist) throw gone();
    job.lastUsedAt = Date.now();
    let bytes = playlist.bytes(file);
    if (!bytes && playlist.isUpcomingPart(file)) {
      await this.#block(
        job,
        playlist,
        () => playlist.bytes(file) !== undefined,
        () => this.#authorize(stream, variant, name, token, clientIp),
      );
      bytes = playlist.bytes(file);
    }
    if (!bytes) throw gone();
    return bytes;
  }

  /**
   * Holds a request until `ready()` (a part came), for at most three target durations (then
   * 503, as RFC 8216bis advises). The grant is checked again at every wake-up, and at least
   * every GRANT_RECHECK_MS: a key revoked meanwhile ends the wait with 403.
   */
  async #block(
    job: HlsJob,
    playlist: LlHlsPlaylist,
    ready: () => boolean,
    recheck: () => void,
  ): Promise<void> {
    if (ready()) return;
    const { metrics } = this.#options;
    const started = performance.now();
    const deadline = started + 3 * playlist.options.targetDurationSeconds * 1000;
    metrics.hlsBlockedRequests.inc();
    try {
      await job.track(async () => {
        for (;;) {
          const remaining = deadline - performance.now();
          if (remaining <= 0) {
            throw new RtccdnError(
              'HLS_PART_NOT_READY',
              'the requested HLS part did not come in time; reload',
              {
                retryAfterMs: 1000,
              },
            );
          }
          await playlist.nextUpdate(Math.min(remaining, GRANT_RECHECK_MS));
          recheck();
          if (job.closed || playlist.closed) {
            throw new RtccdnError('STREAM_NOT_LIVE', `HLS of "${job.name}" stopped; try again`, {
              retryAfterMs: 1000,
            });
          }
          if (ready()) return;
        }
      });
    } finally {
      metrics.hlsBlockedSeconds.observe((performance.now() - started) / 1000);
    }
  }

  /** Verifies the signed URL, then the grant it carries against the ACL as it is now. */
  #authorize(
    stream: string,
    variant: string,
    file: string,
    token: string | undefined,
    clientIp: string,
  ): HlsUrlClaims {
    assertPublishedName(stream);
    if (this.#drainEnded && this.#options.state.draining) {
      throw new RtccdnError(
        'NODE_DRAINING',
        'this edge stopped serving HLS at its drain deadline; load the multivariant playlist again (another edge)',
        { retryAfterMs: 1000 },
      );
    }
    if (variant !== SOURCE_VARIANT && !this.#ladder.some((profile) => profile.name === variant)) {
      throw notFound(`no HLS variant "${variant}"`);
    }
    const claims = this.signer.verify(resource(stream, variant, file), token);
    this.#options.access.check(this.#grantOf(stream, claims, clientIp));
    return claims;
  }

  /**
   * The grant a URL stands for, rebuilt from the ACL: the key it names (by id and fingerprint),
   * still there. A key no longer there becomes a hash no ACL holds, which check() refuses.
   */
  #grantOf(stream: string, claims: HlsUrlClaims, clientIp: string): Grant {
    const fingerprint = claims.keyFingerprint;
    if (fingerprint === undefined) return { stream, keyHash: undefined, keyId: undefined, clientIp };
    const stored = this.#options.access.findGrantedKey(
      stream,
      (key) =>
        (claims.keyId === undefined || key.id === claims.keyId) &&
        this.signer.fingerprint(key.hash) === fingerprint,
    );
    return {
      stream,
      keyHash: stored?.hash ?? `revoked:${fingerprint}`,
      keyId: stored?.id ?? claims.keyId,
      clientIp,
    };
  }

  /** The running packager of `stream`, started if there is none (404 if the stream is not live). */
  async #job(stream: string): Promise<HlsJob> {
    const running = this.#jobs.get(stream);
    if (running && !running.closed) return running;
    const starting = this.#starting.get(stream);
    if (starting) return starting;
    const { config, pool, sources, metrics } = this.#options;
    if (this.#jobs.size + this.#starting.size >= config.maxJobs) {
      throw new RtccdnError('NODE_LIMIT', `this node packages ${config.maxJobs} HLS streams already`, {
        retryAfterMs: 10_000,
      });
    }
    const start = (async () => {
      const source = await sources.resolve(stream);
      if (!source || source.closed)
        throw new RtccdnError('STREAM_NOT_LIVE', `stream "${stream}" is not live`);
      const job = await HlsJob.create({
        source,
        ladder: this.#ladder,
        worker: pool.leastLoaded(),
        ffmpegPath: config.ffmpegPath,
        logger: this.#options.logger,
      });
      if (this.#closed) {
        job.close('node-shutdown');
        throw new RtccdnError('NODE_SHUTTING_DOWN', 'node is shutting down');
      }
      this.#jobs.set(stream, job);
      metrics.hlsJobStarts.inc();
      metrics.hlsJobs.set(this.#jobs.size);
      job.once('firstpart', (afterMs) => metrics.hlsFirstPartSeconds.observe(afterMs / 1000));
      job.once('firstsegment', (afterMs) => metrics.hlsFirstSegmentSeconds.observe(afterMs / 1000));
      job.once('close', (reason) => {
        if (this.#jobs.get(stream) === job) this.#jobs.delete(stream);
        metrics.hlsJobs.set(this.#jobs.size);
        metrics.hlsJobEnds.inc({ reason });
      });
      return job;
    })();
    this.#starting.set(stream, start);
    try {
      return await start;
    } finally {
      this.#starting.delete(stream);
    }
  }

  /**
   * The drain deadline passed: players still here are ended as WHEP viewers are — packagers stop
   * (blocked requests wake and end), and media-playlist and segment requests are refused with
   * NODE_DRAINING until the node stops draining; the player's multivariant playlist request then
   * reaches another edge.
   */
  endDrain(): number {
    this.#drainEnded = true;
    const jobs = [...this.#jobs.values()];
    for (const job of jobs) job.close('node-draining');
    return jobs.length;
  }

  /** The node stopped draining: HLS is served again. */
  resumeAfterDrain(): void {
    this.#drainEnded = false;
  }

  #stopUnwatched(): void {
    for (const job of [...this.#jobs.values()]) {
      if (!job.inUse(this.#options.config.lingerMs)) job.close('unwatched');
    }
  }

  close(): void {
    this.#closed = true;
    clearInterval(this.#sweep);
    for (const job of [...this.#jobs.values()]) job.close('node-shutdown');
  }
}

/** What a signed URL is bound to. */
function resource(stream: string, variant: string, file: string): string {
  return `${stream}/${variant}/${file}`;
}

function notFound(message: string): RtccdnError {
  return new RtccdnError('HLS_SEGMENT_NOT_FOUND', message);
}

export { HLS_SEGMENT_SECONDS, SOURCE_VARIANT };
