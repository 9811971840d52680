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
  SEGMENT_FILE,
  SOURCE_VARIANT,
} from './HlsJob.js';
import { type HlsUrlClaims, HlsUrlSigner } from './HlsUrlSigner.js';

/** How long a media playlist request waits for a new packager's first segment. */
const FIRST_SEGMENT_WAIT_MS = 10_000;

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
  metrics: MediaNodeMetrics;
  logger: Logger;
}

/** A file of a variant, as the routes name it. */
export type HlsFile = { kind: 'media' } | { kind: 'segment'; file: string };

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
   * The media playlist of a variant, its segment URLs signed for the same grant (short-lived),
   * after the URL and the grant are checked. A packager stopped meanwhile (or never started on
   * this edge) is started again: the player holds a valid grant.
   */
  async mediaPlaylist(
    stream: string,
    variant: string,
    token: string | undefined,
    clientIp: string,
  ): Promise<string> {
    const claims = this.#authorize(stream, variant, MEDIA_PLAYLIST, token, clientIp);
    let playlist: string | undefined;
    // A packager whose FFmpeg failed before its first segment (e.g. a UDP port taken between
    // picking it and FFmpeg binding it, on a busy machine) is replaced once, not reported as
    // "no segment" to a player that would give up.
    for (let attempt = 0; attempt < 2 && playlist === undefined; attempt++) {
      const job = await this.#job(stream);
      job.lastUsedAt = Date.now();
      playlist = await job.waitForPlaylist(variant, FIRST_SEGMENT_WAIT_MS);
      if (!job.closed) break;
    }
    if (playlist === undefined) {
      throw new RtccdnError('STREAM_NOT_LIVE', `stream "${stream}" has no HLS segment yet; try again`, {
        retryAfterMs: 1000,
      });
    }
    const segmentClaims: HlsUrlClaims = {
      ...claims,
      expiresAt: Math.min(claims.expiresAt, Date.now() + this.#options.config.segmentUrlTtlMs),
    };
    const sign = (file: string) =>
      `${file}?t=${this.signer.sign(resource(stream, variant, file), segmentClaims)}`;
    return playlist
      .split('\n')
      .map((line) => {
        if (line.startsWith('#EXT-X-MAP:')) {
          return line.replace(/URI="([^"]+)"/, (whole, file: string) =>
            SEGMENT_FILE.test(file) ? `URI="${sign(file)}"` : whole,
          );
        }
        return SEGMENT_FILE.test(line) ? sign(line) : line;
      })
      .join('\n');
  }

  /** An init or media segment, after its URL and grant are checked (404 once FFmpeg deleted it). */
  async segment(
    stream: string,
    variant: string,
    file: string,
    token: string | undefined,
    clientIp: string,
  ): Promise<Buffer> {
    if (!SEGMENT_FILE.test(file)) throw notFound(`no HLS file "${file}"`);
    this.#authorize(stream, variant, file, token, clientIp);
    const job = this.#jobs.get(stream);
    const bytes = await job?.segment(variant, file);
    if (!job || !bytes)
      throw notFound(`HLS segment "${file}" of "${stream}" is not (or no longer) available`);
    job.lastUsedAt = Date.now();
    return bytes;
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
