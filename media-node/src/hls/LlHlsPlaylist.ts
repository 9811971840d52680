import { TypedEmitter } from '../../contract/runtime.js';
import type { Fragment } from './PartAssembler.js';

export interface LlHlsPlaylistOptions {
  /** EXT-X-PART-INF:PART-TARGET: no part is longer (FFmpeg cuts fragments at it). */
  partTargetSeconds: number;
  /** EXT-X-TARGETDURATION (segments are cut at key frames, forced this often). */
  targetDurationSeconds: number;
  /** Complete segments the playlist lists (older ones are dropped, with their bytes). */
  windowSegments: number;
  /** Complete segments whose parts are still listed (and served), besides the open one. */
  partWindowSegments: number;
}

export interface Part {
  index: number;
  durationSeconds: number;
  independent: boolean;
  bytes: Buffer;
}

export interface Segment {
  msn: number;
  /** Wall clock (Unix ms) of the segment's first frame: EXT-X-PROGRAM-DATE-TIME. */
  programDateTime: number;
  /** Parts, until they leave the part window (then empty: the segment's bytes remain). */
  parts: Part[];
  durationSeconds: number;
  /** The whole segment (its parts' bytes back to back), once it is complete. */
  bytes: Buffer | undefined;
}

/** A resource of a media playlist, named as the playlist names it. */
export type PlaylistFile =
  | { kind: 'init' }
  | { kind: 'segment'; msn: number }
  | { kind: 'part'; msn: number; index: number };

export const INIT_FILE = 'init.mp4';
const FILE = /^(?:(init)\.mp4|seg([0-9]{1,10})\.m4s|part([0-9]{1,10})\.([0-9]{1,3})\.m4s)$/;

/** The resource `name` stands for, or undefined when it is no file of a media playlist. */
export function parsePlaylistFile(name: string): PlaylistFile | undefined {
  const match = FILE.exec(name);
  if (!match) return undefined;
  if (match[1]) return { kind: 'init' };
  if (match[2] !== undefined) return { kind: 'segment', msn: Number(match[2]) };
  return { kind: 'part', msn: Number(match[3]), index: Number(match[4]) };
}

export function fileName(file: PlaylistFile): string {
  if (file.kind === 'init') return INIT_FILE;
  if (file.kind === 'segment') return `seg${file.msn}.m4s`;
  return `part${file.msn}.${file.index}.m4s`;
}

export type LlHlsPlaylistEvents = {
  /** A part was added (and maybe a segment completed): blocked requests look again. */
  update: [];
};

/** Seconds as a playlist writes them (enough decimals for 90 kHz ticks, no float noise). */
function seconds(value: number): string {
  return value.toFixed(5);
}

/**
 * One variant's Low-Latency HLS media playlist, in memory: the initialization section, a sliding
 * window of complete segments (each closed where a key frame starts the next), the open
 * segment's parts, and a preload hint for the part to come. Fragments arrive from a
 * PartAssembler; every fragment is one part. Rendered per request, with the caller's signed
 * URIs.
 */
export class LlHlsPlaylist extends TypedEmitter<LlHlsPlaylistEvents> {
  readonly options: LlHlsPlaylistOptions;
  #init: Buffer | undefined;
  /** Complete segments (oldest first), then the open one (last, `bytes` undefined). */
  readonly #segments: Segment[] = [];
  /** Media time ↔ wall clock, fixed at the first fragment. */
  #clock: { mediaSeconds: number; wallMs: number } | undefined;
  #closed = false;

  constructor(options: LlHlsPlaylistOptions) {
    super();
    this.options = options;
  }

  get init(): Buffer | undefined {
    return this.#init;
  }

  get closed(): boolean {
    return this.#closed;
  }

  setInit(bytes: Buffer): void {
    this.#init = bytes;
  }

  /** EXT-X-MEDIA-SEQUENCE: the oldest segment listed. */
  get mediaSequence(): number {
    return this.#segments[0]?.msn ?? 0;
  }

  /** The newest part: its segment's msn and its index; undefined before the first part. */
  get lastPart(): { msn: number; index: number } | undefined {
    const open = this.#open;
    if (open && open.parts.length > 0) return { msn: open.msn, index: open.parts.length - 1 };
    const complete = this.#lastComplete;
    if (!complete) return undefined;
    return { msn: complete.msn, index: complete.parts.length - 1 };
  }

  /** The msn of the newest complete segment, or undefined before the first. */
  get lastCompleteMsn(): number | undefined {
    return this.#lastComplete?.msn;
  }

  /** Whether the playlist lists a complete segment (a non-LL player can start). */
  get hasSegments(): boolean {
    return this.#lastComplete !== undefined;
  }

  get #open(): Segment | undefined {
    const last = this.#segments.at(-1);
    return last && last.bytes === undefined ? last : undefined;
  }

  get #lastComplete(): Segment | undefined {
    for (let index = this.#segments.length - 1; index >= 0; index--) {
      if (this.#segments[index]!.bytes !== undefined) return this.#segments[index];
    }
    return undefined;
  }

  /** The next part's position: what the preload hint names. */
  get nextPart(): { msn: number; index: number } {
    const open = this.#open;
    if (open) return { msn: open.msn, index: open.parts.length };
    const complete = this.#lastComplete;
    return { msn: complete ? complete.msn + 1 : 0, index: 0 };
  }

  /** Adds a fragment as the next part: a key frame starting it closes the open segment first. */
  addFragment(fragment: Fragment, nowMs = Date.now()): void {
    if (this.#closed) return;
    this.#clock ??= { mediaSeconds: fragment.startSeconds + fragment.durationSeconds, wallMs: nowMs };
    let open = this.#open;
    if (open && fragment.independent && open.parts.length > 0) {
      this.#complete(open);
      open = undefined;
    }
    if (!open) {
      const previous = this.#segments.at(-1);
      open = {
        msn: previous ? previous.msn + 1 : 0,
        programDateTime: Math.round(
          this.#clock.wallMs + (fragment.startSeconds - this.#clock.mediaSeconds) * 1000,
        ),
        parts: [],
        durationSeconds: 0,
        bytes: undefined,
      };
      this.#segments.push(open);
    }
    open.parts.push({
      index: open.parts.length,
      durationSeconds: fragment.durationSeconds,
      independent: fragment.independent,
      bytes: fragment.bytes,
    });
    open.durationSeconds += fragment.durationSeconds;
    this.emit('update');
  }

  #complete(segment: Segment): void {
    const bytes = Buffer.concat(segment.parts.map((part) => part.bytes));
    segment.bytes = bytes;
    // The parts become views of the segment's bytes: one copy in memory.
    let offset = 0;
    for (const part of segment.parts) {
      part.bytes = bytes.subarray(offset, offset + part.bytes.length);
      offset += part.bytes.length;
    }
    const complete = this.#segments.filter((entry) => entry.bytes !== undefined);
    const excess = complete.length - this.options.windowSegments;
    if (excess > 0) this.#segments.splice(0, excess);
    const kept = this.#segments.filter((entry) => entry.bytes !== undefined);
    for (const old of kept.slice(0, Math.max(0, kept.length - this.options.partWindowSegments))) {
      old.parts = [];
    }
  }

  /** Bytes of a listed file, or undefined (not listed, or no longer). */
  bytes(file: PlaylistFile): Buffer | undefined {
    if (file.kind === 'init') return this.#init;
    const segment = this.#segments.find((entry) => entry.msn === file.msn);
    if (file.kind === 'segment') return segment?.bytes;
    return segment?.parts[file.index]?.bytes;
  }

  /**
   * Whether the playlist already satisfies a blocking reload for `msn` (and `part`): per RFC
   * 8216bis, it contains that segment (complete) — or with `part`, that part or any later one.
   */
  satisfies(msn: number, part: number | undefined): boolean {
    if (part === undefined) return (this.lastCompleteMsn ?? -1) >= msn;
    const last = this.lastPart;
    if (!last) return false;
    return last.msn > msn || (last.msn === msn && last.index >= part);
  }

  /** Whether `file` is the part the preload hint names, or one about to follow it. */
  isUpcomingPart(file: PlaylistFile): boolean {
    if (file.kind !== 'part') return false;
    const next = this.nextPart;
    return (file.msn === next.msn && file.index >= next.index) || file.msn === next.msn + 1;
  }

  /**
   * Resolves at the next update, at close, or after `timeoutMs` (whichever first); `true` if
   * an update happened.
   */
  nextUpdate(timeoutMs: number): Promise<boolean> {
    if (this.#closed) return Promise.resolve(false);
    return new Promise((resolve) => {
      const done = (updated: boolean) => {
        clearTimeout(timer);
        this.off('update', onUpdate);
        resolve(updated);
      };
      const onUpdate = () => done(!this.#closed);
      const timer = setTimeout(() => done(false), timeoutMs);
      this.once('update', onUpdate);
    });
  }

  /**
   * The media playlist, with `uri(file)` naming each file (the caller signs them). Parts of the
   * last `partWindowSegments` complete segments and of the open one are listed, then a preload
   * hint for the next part.
   */
  render(uri: (file: PlaylistFile) => string): string {
    const { partTargetSeconds, targetDurationSeconds } = this.options;
    const lines = [
      '#EXTM3U',
      '#EXT-X-VERSION:9',
      `#EXT-X-TARGETDURATION:${Math.ceil(targetDurationSeconds)}`,
      `#EXT-X-MEDIA-SEQUENCE:${this.mediaSequence}`,
      '#EXT-X-INDEPENDENT-SEGMENTS',
      `#EXT-X-SERVER-CONTROL:CAN-BLOCK-RELOAD=YES,PART-HOLD-BACK=${seconds(3 * partTargetSeconds)}`,
      `#EXT-X-PART-INF:PART-TARGET=${seconds(partTargetSeconds)}`,
      `#EXT-X-MAP:URI="${uri({ kind: 'init' })}"`,
    ];
    for (const segment of this.#segments) {
      lines.push(`#EXT-X-PROGRAM-DATE-TIME:${new Date(segment.programDateTime).toISOString()}`);
      for (const part of segment.parts) {
        lines.push(
          `#EXT-X-PART:DURATION=${seconds(part.durationSeconds)},URI="${uri({ kind: 'part', msn: segment.msn, index: part.index })}"${part.independent ? ',INDEPENDENT=YES' : ''}`,
        );
      }
      if (segment.bytes !== undefined) {
        lines.push(
          `#EXTINF:${seconds(segment.durationSeconds)},`,
          uri({ kind: 'segment', msn: segment.msn }),
        );
      }
    }
    const next = this.nextPart;
    lines.push(`#EXT-X-PRELOAD-HINT:TYPE=PART,URI="${uri({ kind: 'part', ...next })}"`, '');
    return lines.join('\n');
  }

  /** Drops everything held and wakes every waiting request. */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#segments.length = 0;
    this.#init = undefined;
    // Waiting requests wake, find the playlist closed and unsubscribe.
    this.emit('update');
  }
}
