import { TypedEmitter } from '../../contract/runtime.js';
import { type Box, BoxSplitter, Fmp4Error, parseMoof, parseMoov, type TrackInfo } from './Fmp4Reader.js';

/** One fMP4 fragment (its `moof` and `mdat`, and any `styp`/`prft` before them): an LL-HLS part. */
export interface Fragment {
  bytes: Buffer;
  /** Start of the fragment in media time (seconds), from the video track's `tfdt`. */
  startSeconds: number;
  /** Duration of the video track's samples (seconds). */
  durationSeconds: number;
  /** The video track's first sample is a key frame: a player can start decoding here. */
  independent: boolean;
}

export type PartAssemblerEvents = {
  /** The initialization section (`ftyp` + `moov`). */
  init: [bytes: Buffer, tracks: TrackInfo[]];
  fragment: [fragment: Fragment];
  /** The stream is malformed: nothing more is assembled. */
  error: [error: Fmp4Error];
};

/**
 * Turns the byte stream of a fragmented MP4 (FFmpeg's `-f mp4` with fragment flags, read from a
 * pipe in chunks of any size) into its initialization section and whole fragments, each with its
 * timing taken from the video track (the track players align parts and segments on).
 */
export class PartAssembler extends TypedEmitter<PartAssemblerEvents> {
  #splitter = new BoxSplitter();
  #initBoxes: Buffer[] = [];
  #tracks: TrackInfo[] | undefined;
  #fragmentBoxes: Box[] = [];
  #failed = false;
  #closed = false;

  get tracks(): readonly TrackInfo[] | undefined {
    return this.#tracks;
  }

  push(chunk: Buffer): void {
    if (this.#failed || this.#closed) return;
    try {
      for (const box of this.#splitter.push(chunk)) this.#box(box);
    } catch (error) {
      this.#failed = true;
      this.emit('error', error instanceof Fmp4Error ? error : new Fmp4Error(String(error)));
    }
  }

  /** Drops what is held of an incomplete box or fragment; later chunks are ignored. */
  close(): void {
    this.#closed = true;
    this.#splitter = new BoxSplitter();
    this.#initBoxes = [];
    this.#fragmentBoxes = [];
  }

  #box(box: Box): void {
    if (!this.#tracks) {
      if (box.type === 'moov') {
        this.#tracks = parseMoov(box);
        if (this.#tracks.length === 0) throw new Fmp4Error('moov declares no track');
        this.emit('init', Buffer.concat([...this.#initBoxes, box.bytes]), this.#tracks);
        this.#initBoxes = [];
      } else if (box.type === 'moof' || box.type === 'mdat') {
        throw new Fmp4Error(`${box.type} before the moov`);
      } else {
        this.#initBoxes.push(box.bytes);
      }
      return;
    }
    this.#fragmentBoxes.push(box);
    if (box.type !== 'mdat') return;
    const boxes = this.#fragmentBoxes;
    this.#fragmentBoxes = [];
    const moof = boxes.find((entry) => entry.type === 'moof');
    if (!moof) throw new Fmp4Error('mdat without a moof');
    const runs = parseMoof(moof, this.#tracks);
    const video =
      this.#tracks.find(
        (track) => track.handler === 'vide' && runs.some((run) => run.trackId === track.id),
      ) ?? this.#tracks.find((track) => runs.some((run) => run.trackId === track.id));
    const run = runs.find((entry) => entry.trackId === video?.id);
    if (!video || !run) throw new Fmp4Error('moof without a track run');
    this.emit('fragment', {
      bytes: Buffer.concat(boxes.map((entry) => entry.bytes)),
      startSeconds: run.baseDecodeTime / video.timescale,
      durationSeconds: run.duration / video.timescale,
      independent: run.startsWithSync,
    });
  }
}
