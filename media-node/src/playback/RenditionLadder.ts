import type { types } from 'mediasoup';
import { TypedEmitter } from '../../contract/runtime.js';
import type { Logger } from '../logger.js';
import type { MediaWorker } from '../media/MediaWorker.js';
import { DEFAULT_PLAN_KEY } from '../media/payloadTypes.js';
import { Stream, type StreamRouter } from '../media/Stream.js';
import { keyFrameRequestSsrcs, mediaCodecOf, numberingOf } from '../relay/RelayedStream.js';
import { StableProducer } from '../relay/StableProducer.js';
import { codecMatches } from '../sdp/translate.js';

export type RenditionLadderEvents = {
  close: [reason: string];
};

/** One rung of the ladder: a stream (a rendition, or the source on top) and how it is held. */
interface Rung {
  stream: Stream;
  held: StreamRouter;
  feed: types.Consumer;
}

/**
 * A source stream and its renditions as one simulcast stream: its video is a StableProducer with
 * one layer per rung (the renditions, lowest first, then the source on top), each layer fed from
 * that rung's video, and its audio is the source's. Viewers consume it like any stream and get a
 * simulcast consumer; moving them between layers — mediasoup's layer selection capped by their
 * BitrateAdapter — moves them along the ladder on the same WebRTC session, re-sequenced and
 * starting at a key frame (StableProducer + RtpRewriter; the layers' sender reports let
 * mediasoup line their timestamps up).
 *
 * It holds a reference on every rung while it lives (so renditions keep running while anyone
 * watches the ladder) and closes when any rung ends: its viewers' sessions end and players join
 * again, getting a new ladder (or the plain source).
 */
export class RenditionLadder extends TypedEmitter<RenditionLadderEvents> {
  readonly stream: Stream;
  readonly #rungs: Rung[];
  readonly #source: Stream;
  readonly #logger: Logger;
  #closed = false;

  private constructor(stream: Stream, source: Stream, rungs: Rung[], logger: Logger) {
    super();
    this.stream = stream;
    this.#source = source;
    this.#rungs = rungs;
    this.#logger = logger;
    stream.once('close', (reason) => this.close(reason));
    for (const rung of rungs) {
      rung.stream.once('close', (reason) => this.close(`rung ${rung.stream.name} ended: ${reason}`));
    }
  }

  /**
   * Builds the ladder on `worker` from `source` and `renditions` (any order; those whose video
   * codec differs from the source's are left out). Returns undefined when fewer than one
   * rendition fits (no ladder to climb). On failure nothing is held.
   */
  static async create(options: {
    source: Stream;
    renditions: { stream: Stream; pixels: number }[];
    worker: MediaWorker;
    fanoutLingerMs: number;
    logger: Logger;
  }): Promise<RenditionLadder | undefined> {
    const { source, worker } = options;
    const sourceVideo = source.producers.find((producer) => producer.kind === 'video');
    if (!sourceVideo || (sourceVideo.rtpParameters.encodings?.length ?? 1) > 1) return undefined;
    const codec = mediaCodecOf(sourceVideo.rtpParameters);
    const steps = options.renditions
      .filter(({ stream }) => {
        const video = stream.producers.find((producer) => producer.kind === 'video');
        return (
          video !== undefined && !stream.closed && codecMatches(mediaCodecOf(video.rtpParameters), codec)
        );
      })
      .sort((a, b) => a.pixels - b.pixels)
      .map(({ stream }) => stream);
    if (steps.length === 0) return undefined;

    const logger = options.logger.child({ stream: source.name, ladder: true });
    const stream = await Stream.create(
      source.name,
      worker,
      source.producers.map((producer) => numberingOf(producer.rtpParameters)),
      logger,
      options.fanoutLingerMs,
    );
    const held: { stream: Stream; router: StreamRouter }[] = [];
    try {
      const router = stream.origin.router;
      const directTransport = await router.createDirectTransport();
      const rungs: Rung[] = [];
      for (const rungStream of [...steps, source]) {
        const streamRouter = await rungStream.acquire(worker, { key: DEFAULT_PLAN_KEY, planned: [] });
        held.push({ stream: rungStream, router: streamRouter });
        const video = streamRouter.producers.find((producer) => producer.kind === 'video')!;
        const { pipeProducer } = await streamRouter.router.pipeToRouter({
          producerId: video.id,
          router,
          keepId: false,
        });
        if (!pipeProducer) throw new Error(`no video to pipe from ${rungStream.name}`);
        const feed = await directTransport.consume({
          producerId: pipeProducer.id,
          rtpCapabilities: router.rtpCapabilities,
          enableRtx: false,
        });
        rungs.push({ stream: rungStream, held: streamRouter, feed });
      }
      const stable = await StableProducer.create(directTransport, {
        kind: 'video',
        codec,
        headerExtensions: rungs[0]!.feed.rtpParameters.headerExtensions ?? [],
        cname: sourceVideo.rtpParameters.rtcp?.cname ?? `ladder-${source.name}`,
        appData: { stream: source.name, ladder: true },
        layers: rungs.map(() => ({})),
      });
      stable.switchInput(rungs.map((rung) => rung.feed.rtpParameters.encodings?.[0]?.ssrc ?? 0));
      for (const rung of rungs) rung.feed.on('rtp', (packet) => stable.send(packet));
      // Viewers' key frame requests name a layer's SSRC: ask that rung (only) for one.
      const layerSsrcs = (stable.producer.rtpParameters.encodings ?? []).map((encoding) => encoding.ssrc);
      directTransport.on('rtcp', (packet) => {
        for (const ssrc of keyFrameRequestSsrcs(packet)) {
          const rung = rungs[layerSsrcs.indexOf(ssrc)];
          if (rung && !rung.feed.closed) rung.feed.requestKeyFrame().catch(() => undefined);
        }
      });
      const sourceRouter = held[held.length - 1]!.router;
      for (const [index, producer] of source.producers.entries()) {
        if (producer.kind === 'video') {
          stream.addProducer(stable.producer);
          continue;
        }
        const { pipeProducer } = await sourceRouter.router.pipeToRouter({
          producerId: sourceRouter.producers[index]!.id,
          router,
          keepId: false,
        });
        if (!pipeProducer) throw new Error(`no ${producer.kind} to pipe from ${source.name}`);
        stream.addProducer(pipeProducer);
      }
      logger.info({ rungs: rungs.map((rung) => rung.stream.name) }, 'rendition ladder built');
      return new RenditionLadder(stream, source, rungs, logger);
    } catch (error) {
      for (const { stream: rungStream, router } of held) rungStream.release(router.key);
      stream.close('ladder setup failed');
      throw error;
    }
  }

  /** The stream the ladder climbs to (its top rung). */
  get source(): Stream {
    return this.#source;
  }

  /** The streams of the rungs, lowest first (the source last). */
  get rungNames(): string[] {
    return this.#rungs.map((rung) => rung.stream.name);
  }

  get closed(): boolean {
    return this.#closed;
  }

  close(reason: string): void {
    if (this.#closed) return;
    this.#closed = true;
    for (const rung of this.#rungs) {
      rung.feed.close();
      rung.stream.release(rung.held.key);
    }
    this.stream.close(reason);
    this.#logger.info({ reason, source: this.#source.name }, 'rendition ladder closed');
    this.emit('close', reason);
  }
}
