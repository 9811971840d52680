/**
 * Just enough ISO-BMFF (fragmented MP4) reading to package FFmpeg's fMP4 output as LL-HLS parts:
 * top-level boxes split out of a byte stream, the tracks of the `moov` and, per `moof`, each
 * track's base decode time, duration and whether its first sample is a sync (key) sample.
 */

/** A top-level box larger than this is refused: FFmpeg's fragments are far smaller. */
export const MAX_BOX_BYTES = 64 * 1024 * 1024;

export class Fmp4Error extends Error {
  readonly code = 'FMP4_INVALID';
}

export interface Box {
  type: string;
  /** The whole box, header included. */
  bytes: Buffer;
}

/**
 * Splits a byte stream into whole top-level boxes, whatever the chunk boundaries. Holds at most
 * one incomplete box.
 */
export class BoxSplitter {
  #pending: Buffer[] = [];
  #pendingBytes = 0;

  /** The boxes completed by `chunk`, in order. Throws Fmp4Error on a malformed box header. */
  push(chunk: Buffer): Box[] {
    this.#pending.push(chunk);
    this.#pendingBytes += chunk.length;
    const boxes: Box[] = [];
    for (;;) {
      const size = this.#nextBoxSize();
      if (size === undefined || this.#pendingBytes < size) break;
      const joined = this.#pending.length === 1 ? this.#pending[0]! : Buffer.concat(this.#pending);
      const bytes = joined.subarray(0, size);
      boxes.push({ type: bytes.toString('latin1', 4, 8), bytes });
      const rest = joined.subarray(size);
      this.#pending = rest.length > 0 ? [rest] : [];
      this.#pendingBytes = rest.length;
    }
    return boxes;
  }

  /** Bytes held of a box not yet complete. */
  get pendingBytes(): number {
    return this.#pendingBytes;
  }

  #nextBoxSize(): number | undefined {
    if (this.#pendingBytes < 8) return undefined;
    if (this.#pending[0]!.length < 16 && this.#pending.length > 1) {
      this.#pending = [Buffer.concat(this.#pending)];
    }
    const head = this.#pending[0]!;
    let size = head.readUInt32BE(0);
    if (size === 1) {
      if (this.#pendingBytes < 16) return undefined;
      const large = head.readBigUInt64BE(8);
      if (large > BigInt(MAX_BOX_BYTES)) throw new Fmp4Error(`box larger than ${MAX_BOX_BYTES} bytes`);
      size = Number(large);
      if (size < 16) throw new Fmp4Error(`box size ${size} smaller than its header`);
      return size;
    }
    if (size === 0) throw new Fmp4Error('box extending to the end of the stream (size 0) in a live stream');
    if (size < 8) throw new Fmp4Error(`box size ${size} smaller than its header`);
    if (size > MAX_BOX_BYTES) throw new Fmp4Error(`box larger than ${MAX_BOX_BYTES} bytes`);
    return size;
  }
}

/** The child boxes of a container box's payload (`bytes` without the container's header). */
export function childBoxes(bytes: Buffer): Box[] {
  const boxes: Box[] = [];
  let offset = 0;
  while (offset + 8 <= bytes.length) {
    let size = bytes.readUInt32BE(offset);
    let header = 8;
    if (size === 1) {
      if (offset + 16 > bytes.length) throw new Fmp4Error('truncated box header');
      size = Number(bytes.readBigUInt64BE(offset + 8));
      header = 16;
    } else if (size === 0) {
      size = bytes.length - offset;
    }
    if (size < header || offset + size > bytes.length) throw new Fmp4Error('box overruns its container');
    boxes.push({
      type: bytes.toString('latin1', offset + 4, offset + 8),
      bytes: bytes.subarray(offset, offset + size),
    });
    offset += size;
  }
  return boxes;
}

/** The payload of a box (its bytes after the header). */
function payload(box: Box): Buffer {
  return box.bytes.subarray(box.bytes.readUInt32BE(0) === 1 ? 16 : 8);
}

function child(box: Box, type: string): Box | undefined {
  return childBoxes(payload(box)).find((entry) => entry.type === type);
}

function children(box: Box, type: string): Box[] {
  return childBoxes(payload(box)).filter((entry) => entry.type === type);
}

function need<T>(value: T | undefined, what: string): T {
  if (value === undefined) throw new Fmp4Error(`${what} missing`);
  return value;
}

export interface TrackInfo {
  id: number;
  /** `vide`, `soun`, … */
  handler: string;
  /** Ticks per second of the track's media time. */
  timescale: number;
  /** From `trex`: a sample's duration and flags when neither `tfhd` nor `trun` give them. */
  defaultSampleDuration: number;
  defaultSampleFlags: number;
}

/** The tracks a `moov` box declares. */
export function parseMoov(moov: Box): TrackInfo[] {
  const trex = new Map<number, { duration: number; flags: number }>();
  const mvex = child(moov, 'mvex');
  for (const box of mvex ? children(mvex, 'trex') : []) {
    const body = payload(box);
    trex.set(body.readUInt32BE(4), { duration: body.readUInt32BE(12), flags: body.readUInt32BE(20) });
  }
  return children(moov, 'trak').map((trak) => {
    const tkhd = payload(need(child(trak, 'tkhd'), 'tkhd'));
    const id = tkhd.readUInt32BE(tkhd[0] === 1 ? 20 : 12);
    const mdia = need(child(trak, 'mdia'), 'mdia');
    const mdhd = payload(need(child(mdia, 'mdhd'), 'mdhd'));
    const timescale = mdhd.readUInt32BE(mdhd[0] === 1 ? 20 : 12);
    const hdlr = payload(need(child(mdia, 'hdlr'), 'hdlr'));
    const handler = hdlr.toString('latin1', 8, 12);
    if (timescale === 0) throw new Fmp4Error(`track ${id} has timescale 0`);
    const defaults = trex.get(id);
    return {
      id,
      handler,
      timescale,
      defaultSampleDuration: defaults?.duration ?? 0,
      defaultSampleFlags: defaults?.flags ?? 0,
    };
  });
}

export interface TrackRun {
  trackId: number;
  /** `tfdt`: decode time of the first sample, in the track's timescale. */
  baseDecodeTime: number;
  /** Sum of the samples' durations, in the track's timescale. */
  duration: number;
  samples: number;
  /** Whether the first sample is a sync sample (a key frame). */
  startsWithSync: boolean;
}

/** A sample's flags say it is not a sync sample, or that it depends on others. */
function isSync(flags: number): boolean {
  const dependsOn = (flags >>> 24) & 0x3;
  const nonSync = (flags >>> 16) & 0x1;
  return nonSync === 0 && dependsOn !== 1;
}

/** Each track's run in a `moof` box (durations from trun, else tfhd, else trex defaults). */
export function parseMoof(moof: Box, tracks: readonly TrackInfo[]): TrackRun[] {
  return children(moof, 'traf').map((traf) => {
    const tfhd = payload(need(child(traf, 'tfhd'), 'tfhd'));
    const tfhdFlags = tfhd.readUInt32BE(0) & 0xffffff;
    const trackId = tfhd.readUInt32BE(4);
    const track = tracks.find((entry) => entry.id === trackId);
    if (!track) throw new Fmp4Error(`moof names track ${trackId} the moov does not declare`);
    let offset = 8;
    if (tfhdFlags & 0x01) offset += 8; // base-data-offset
    if (tfhdFlags & 0x02) offset += 4; // sample-description-index
    let defaultDuration = track.defaultSampleDuration;
    if (tfhdFlags & 0x08) {
      defaultDuration = tfhd.readUInt32BE(offset);
      offset += 4;
    }
    if (tfhdFlags & 0x10) offset += 4; // default-sample-size
    let defaultFlags = track.defaultSampleFlags;
    if (tfhdFlags & 0x20) defaultFlags = tfhd.readUInt32BE(offset);

    const tfdtBox = child(traf, 'tfdt');
    let baseDecodeTime = 0;
    if (tfdtBox) {
      const tfdt = payload(tfdtBox);
      baseDecodeTime = tfdt[0] === 1 ? Number(tfdt.readBigUInt64BE(4)) : tfdt.readUInt32BE(4);
    }
    let duration = 0;
    let samples = 0;
    let firstFlags: number | undefined;
    for (const trunBox of children(traf, 'trun')) {
      const trun = payload(trunBox);
      const flags = trun.readUInt32BE(0) & 0xffffff;
      const count = trun.readUInt32BE(4);
      let at = 8;
      if (flags & 0x001) at += 4; // data-offset
      let first: number | undefined;
      if (flags & 0x004) {
        first = trun.readUInt32BE(at);
        at += 4;
      }
      const entryBytes =
        (flags & 0x100 ? 4 : 0) + (flags & 0x200 ? 4 : 0) + (flags & 0x400 ? 4 : 0) + (flags & 0x800 ? 4 : 0);
      if (at + count * entryBytes > trun.length) throw new Fmp4Error('trun overruns its box');
      for (let index = 0; index < count; index++) {
        let entry = at + index * entryBytes;
        if (flags & 0x100) {
          duration += trun.readUInt32BE(entry);
          entry += 4;
        } else {
          duration += defaultDuration;
        }
        if (flags & 0x200) entry += 4;
        if (index === 0 && firstFlags === undefined) {
          firstFlags = first ?? (flags & 0x400 ? trun.readUInt32BE(entry) : defaultFlags);
        }
      }
      samples += count;
    }
    return { trackId, baseDecodeTime, duration, samples, startsWithSync: isSync(firstFlags ?? defaultFlags) };
  });
}
