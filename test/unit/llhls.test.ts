import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from '@jest/globals';
import { BoxSplitter, Fmp4Error, parseMoov } from '../../media-node/src/hls/Fmp4Reader.js';
import { partTargetSeconds } from '../../media-node/src/hls/HlsJob.js';
import { LlHlsPlaylist, parsePlaylistFile } from '../../media-node/src/hls/LlHlsPlaylist.js';
import { type Fragment, PartAssembler } from '../../media-node/src/hls/PartAssembler.js';

/**
 * Fragmented MP4 as the packager has FFmpeg write it (the same movflags and fragment duration),
 * from FFmpeg's own test pattern: `seconds` of 30 fps video with a key frame every second, and
 * a tone as AAC.
 */
function fmp4(seconds: number, size = '320x240'): Buffer {
  const result = spawnSync(
    'ffmpeg',
    [
      '-hide_banner',
      '-loglevel',
      'error',
      '-f',
      'lavfi',
      '-i',
      `testsrc=size=${size}:rate=30:duration=${seconds}`,
      '-f',
      'lavfi',
      '-i',
      `sine=frequency=440:sample_rate=48000:duration=${seconds}`,
      '-c:v',
      'libx264',
      '-preset',
      'ultrafast',
      '-tune',
      'zerolatency',
      '-pix_fmt',
      'yuv420p',
      '-force_key_frames',
      'expr:gte(t,n_forced*1)',
      '-sc_threshold',
      '0',
      '-c:a',
      'aac',
      '-f',
      'mp4',
      '-movflags',
      '+frag_keyframe+empty_moov+default_base_moof+skip_sidx+skip_trailer',
      '-frag_duration',
      String(Math.round(partTargetSeconds(30) * 1_000_000) - 1000),
      'pipe:1',
    ],
    { maxBuffer: 64 * 1024 * 1024 },
  );
  if (result.status !== 0) throw new Error(`ffmpeg failed: ${result.stderr.toString()}`);
  return result.stdout;
}

function assemble(chunks: Buffer[]): { init: Buffer | undefined; fragments: Fragment[]; errors: Error[] } {
  const assembler = new PartAssembler();
  const out = { init: undefined as Buffer | undefined, fragments: [] as Fragment[], errors: [] as Error[] };
  assembler.on('init', (bytes) => {
    out.init = bytes;
  });
  assembler.on('fragment', (fragment) => out.fragments.push(fragment));
  assembler.on('error', (error) => out.errors.push(error));
  for (const chunk of chunks) assembler.push(chunk);
  return out;
}

function ffprobeFrames(bytes: Buffer): { video: number; audio: number } {
  const dir = mkdtempSync(join(tmpdir(), 'llhls-unit-'));
  try {
    writeFileSync(join(dir, 'x.mp4'), bytes);
    const result = spawnSync(
      'ffprobe',
      [
        '-v',
        'error',
        '-count_packets',
        '-show_entries',
        'stream=codec_type,nb_read_packets',
        '-of',
        'csv=p=0',
        join(dir, 'x.mp4'),
      ],
      { encoding: 'utf8' },
    );
    const counts = Object.fromEntries(
      result.stdout
        .trim()
        .split('\n')
        .map((line) => line.split(',') as [string, string]),
    );
    return { video: Number(counts['video'] ?? 0), audio: Number(counts['audio'] ?? 0) };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

describe('fragmented MP4 reading (real FFmpeg output)', () => {
  let clip: Buffer;
  let small: Buffer;

  beforeAll(() => {
    clip = fmp4(3);
    small = fmp4(0.4, '64x48');
  });

  it('splits top-level boxes the same wherever the pipe cuts the stream, at every byte offset', () => {
    const whole = new BoxSplitter().push(small).map((box) => `${box.type}:${box.bytes.length}`);
    expect(whole.slice(0, 2)).toEqual([expect.stringMatching(/^ftyp:/), expect.stringMatching(/^moov:/)]);
    expect(whole.filter((box) => box.startsWith('moof')).length).toBeGreaterThanOrEqual(2);
    expect(whole.reduce((sum, box) => sum + Number(box.split(':')[1]), 0)).toBe(small.length);
    for (let offset = 0; offset <= small.length; offset++) {
      const splitter = new BoxSplitter();
      const boxes = [...splitter.push(small.subarray(0, offset)), ...splitter.push(small.subarray(offset))];
      const got = boxes.map((box) => `${box.type}:${box.bytes.length}`);
      if (got.join() !== whole.join()) throw new Error(`split at ${offset}: ${got.join()} ≠ ${whole.join()}`);
      expect(splitter.pendingBytes).toBe(0);
    }
    // And byte by byte: the same boxes, the same bytes.
    const splitter = new BoxSplitter();
    const bytewise = [];
    for (let index = 0; index < small.length; index++)
      bytewise.push(...splitter.push(small.subarray(index, index + 1)));
    expect(Buffer.concat(bytewise.map((box) => box.bytes)).equals(small)).toBe(true);
  });

  it('reads the tracks of the moov: a video and an audio track with their timescales', () => {
    const moov = new BoxSplitter().push(clip).find((box) => box.type === 'moov')!;
    const tracks = parseMoov(moov);
    expect(tracks.map((track) => track.handler).sort()).toEqual(['soun', 'vide']);
    expect(tracks.find((track) => track.handler === 'soun')!.timescale).toBe(48_000);
    expect(tracks.find((track) => track.handler === 'vide')!.timescale).toBeGreaterThan(0);
  });

  it('cuts the stream into parts of at most the part target, key frames starting each second', () => {
    const { init, fragments, errors } = assemble([clip]);
    expect(errors).toEqual([]);
    expect(init!.subarray(4, 8).toString()).toBe('ftyp');
    const target = partTargetSeconds(30);
    expect(fragments.length).toBeGreaterThanOrEqual(14);
    // The first part may be longer by up to one AAC frame: FFmpeg starts the audio 1024 samples
    // early (encoder priming) and stretches the first video sample back to that start.
    expect(fragments[0]!.durationSeconds).toBeLessThanOrEqual(target + 1024 / 48_000 + 0.001);
    for (const fragment of fragments.slice(1)) {
      expect(fragment.durationSeconds).toBeLessThanOrEqual(target + 1e-6);
      expect(fragment.durationSeconds).toBeGreaterThan(0);
      expect(fragment.bytes.subarray(4, 8).toString()).toBe('moof');
    }
    // Back to back in media time, 3 s in all (the last part may still be in FFmpeg's hands: none
    // is, the clip ended).
    for (let index = 1; index < fragments.length; index++) {
      const previous = fragments[index - 1]!;
      expect(fragments[index]!.startSeconds).toBeCloseTo(previous.startSeconds + previous.durationSeconds, 3);
    }
    const total = fragments.reduce((sum, fragment) => sum + fragment.durationSeconds, 0);
    expect(total).toBeCloseTo(3, 1);
    // Key frames (forced every second) start parts at 0, 1 and 2 s, and only there.
    expect(
      fragments
        .filter((fragment) => fragment.independent)
        .map((fragment) => Math.round(fragment.startSeconds * 10) / 10),
    ).toEqual([0, 1, 2]);
    // The same fragments from a pipe delivering odd chunk sizes.
    const chunks: Buffer[] = [];
    for (let offset = 0, size = 1; offset < clip.length; offset += size, size = ((size * 7 + 3) % 4093) + 1) {
      chunks.push(clip.subarray(offset, offset + size));
    }
    const chunked = assemble(chunks);
    expect(chunked.fragments.map((fragment) => fragment.bytes.length)).toEqual(
      fragments.map((fragment) => fragment.bytes.length),
    );
    expect(
      Buffer.concat(chunked.fragments.map((fragment) => fragment.bytes)).equals(
        Buffer.concat(fragments.map((fragment) => fragment.bytes)),
      ),
    ).toBe(true);
  });

  it('drops what it holds on close and assembles nothing after', () => {
    const assembler = new PartAssembler();
    const fragments: Fragment[] = [];
    assembler.on('fragment', (fragment) => fragments.push(fragment));
    assembler.push(clip.subarray(0, Math.floor(clip.length / 2)));
    const before = fragments.length;
    expect(before).toBeGreaterThan(0);
    assembler.close();
    assembler.push(clip.subarray(Math.floor(clip.length / 2)));
    expect(fragments).toHaveLength(before);
  });

  it('reports a malformed stream once, as an error event, and assembles nothing more', () => {
    const broken = Buffer.from(clip);
    broken.writeUInt32BE(4, 0); // the ftyp box claims 4 bytes: less than its header
    const { fragments, errors } = assemble([broken, clip]);
    expect(fragments).toEqual([]);
    expect(errors).toHaveLength(1);
    expect(errors[0]).toBeInstanceOf(Fmp4Error);
    expect(errors[0]!.message).toMatch(/smaller than its header/);
    const moofFirst = assemble([
      clip.subarray(
        new BoxSplitter()
          .push(clip)
          .slice(0, 2)
          .reduce((sum, box) => sum + box.bytes.length, 0),
      ),
    ]);
    expect(moofFirst.errors[0]?.message).toMatch(/moof before the moov/);
  });
});

describe('LL-HLS media playlist', () => {
  let clip: Buffer;
  beforeAll(() => {
    clip = fmp4(4);
  });

  const playlistOf = (fragments: Fragment[], init: Buffer, windowSegments = 6, partWindowSegments = 3) => {
    const playlist = new LlHlsPlaylist({
      partTargetSeconds: partTargetSeconds(30),
      targetDurationSeconds: 1,
      windowSegments,
      partWindowSegments,
    });
    playlist.setInit(init);
    fragments.forEach((fragment, index) => {
      playlist.addFragment(fragment, 1_700_000_000_000 + index * 200);
    });
    return playlist;
  };
  const name = (file: Parameters<Parameters<LlHlsPlaylist['render']>[0]>[0]) =>
    file.kind === 'init'
      ? 'init.mp4'
      : file.kind === 'segment'
        ? `seg${file.msn}.m4s`
        : `part${file.msn}.${file.index}.m4s`;

  it('lists parts, key-frame segments, server control, a preload hint and program date-times', () => {
    const { init, fragments } = assemble([clip]);
    const playlist = playlistOf(fragments, init!);
    const text = playlist.render((file) => `${name(file)}?t=x`);
    const lines = text.split('\n');
    expect(lines.slice(0, 8)).toEqual([
      '#EXTM3U',
      '#EXT-X-VERSION:9',
      '#EXT-X-TARGETDURATION:1',
      '#EXT-X-MEDIA-SEQUENCE:0',
      '#EXT-X-INDEPENDENT-SEGMENTS',
      '#EXT-X-SERVER-CONTROL:CAN-BLOCK-RELOAD=YES,PART-HOLD-BACK=0.60000',
      '#EXT-X-PART-INF:PART-TARGET=0.20000',
      '#EXT-X-MAP:URI="init.mp4?t=x"',
    ]);
    // Four seconds: segments 0, 1, 2 complete (closed where the next key frame starts), 3 open.
    expect(lines.filter((line) => line.startsWith('#EXTINF:'))).toEqual([
      '#EXTINF:1.02135,', // the first part's audio priming (see above)
      '#EXTINF:1.00000,',
      '#EXTINF:1.00000,',
    ]);
    expect(lines.filter((line) => /^seg\d+\.m4s\?t=x$/.test(line))).toEqual([
      'seg0.m4s?t=x',
      'seg1.m4s?t=x',
      'seg2.m4s?t=x',
    ]);
    const parts = lines.filter((line) => line.startsWith('#EXT-X-PART:'));
    expect(parts[0]).toBe('#EXT-X-PART:DURATION=0.22135,URI="part0.0.m4s?t=x",INDEPENDENT=YES');
    expect(parts[1]).toBe('#EXT-X-PART:DURATION=0.20000,URI="part0.1.m4s?t=x"');
    expect(parts.filter((line) => line.endsWith('INDEPENDENT=YES'))).toHaveLength(4);
    expect(lines.filter((line) => line.startsWith('#EXT-X-PROGRAM-DATE-TIME:'))).toHaveLength(4);
    const last = playlist.lastPart!;
    expect(last.msn).toBe(3);
    expect(lines.at(-2)).toBe(`#EXT-X-PRELOAD-HINT:TYPE=PART,URI="part3.${last.index + 1}.m4s?t=x"`);
    // Program date-times as far apart as the segments are long.
    const dates = lines
      .filter((line) => line.startsWith('#EXT-X-PROGRAM-DATE-TIME:'))
      .map((line) => Date.parse(line.slice(25)));
    expect(dates[1]! - dates[0]!).toBe(1021);
    expect(dates[2]! - dates[1]!).toBe(1000);
  });

  it('serves a segment as its parts back to back, decodable after the init section', () => {
    const { init, fragments } = assemble([clip]);
    const playlist = playlistOf(fragments, init!);
    const segment = playlist.bytes({ kind: 'segment', msn: 1 })!;
    const parts = Array.from({ length: 5 }, (_, index) => playlist.bytes({ kind: 'part', msn: 1, index })!);
    expect(Buffer.concat(parts).equals(segment)).toBe(true);
    expect(playlist.bytes({ kind: 'part', msn: 1, index: 5 })).toBeUndefined();
    expect(ffprobeFrames(Buffer.concat([init!, segment])).video).toBe(30);
    expect(ffprobeFrames(Buffer.concat([init!, parts[0]!])).video).toBe(6);
  });

  it('slides its window: old segments leave, parts only for the last ones', () => {
    const { init, fragments } = assemble([clip]);
    const playlist = playlistOf(fragments, init!, 2, 1);
    const text = playlist.render(name);
    expect(text).toContain('#EXT-X-MEDIA-SEQUENCE:1\n');
    expect(text).not.toContain('seg0.m4s');
    expect(playlist.bytes({ kind: 'segment', msn: 0 })).toBeUndefined();
    // Parts of segment 2 (the last complete) and 3 (open) are listed; of 1 no more.
    expect(text).not.toContain('part1.');
    expect(text).toContain('part2.0.m4s');
    expect(playlist.bytes({ kind: 'part', msn: 1, index: 0 })).toBeUndefined();
    expect(playlist.bytes({ kind: 'segment', msn: 1 })).toBeDefined();
    playlist.close();
    expect(playlist.bytes({ kind: 'segment', msn: 1 })).toBeUndefined();
    expect(playlist.init).toBeUndefined();
  });

  it('tells when a blocking reload is satisfied, and which parts are still to come', async () => {
    const { init, fragments } = assemble([clip]);
    const playlist = playlistOf(fragments.slice(0, 7), init!); // segment 0 (5 parts) + 2 parts of 1
    expect(playlist.lastPart).toEqual({ msn: 1, index: 1 });
    expect(playlist.satisfies(0, undefined)).toBe(true);
    expect(playlist.satisfies(1, undefined)).toBe(false); // segment 1 is not complete
    expect(playlist.satisfies(1, 1)).toBe(true);
    expect(playlist.satisfies(1, 2)).toBe(false);
    expect(playlist.satisfies(0, 9)).toBe(true); // a later segment's part is "later"
    expect(playlist.isUpcomingPart({ kind: 'part', msn: 1, index: 2 })).toBe(true);
    expect(playlist.isUpcomingPart({ kind: 'part', msn: 1, index: 0 })).toBe(false);
    expect(playlist.isUpcomingPart({ kind: 'part', msn: 5, index: 0 })).toBe(false);
    // A waiter wakes at the next part.
    const woke = playlist.nextUpdate(5000);
    playlist.addFragment(fragments[7]!);
    expect(await woke).toBe(true);
    expect(playlist.satisfies(1, 2)).toBe(true);
    // …and times out without one; close wakes waiters with false.
    expect(await playlist.nextUpdate(20)).toBe(false);
    const closing = playlist.nextUpdate(5000);
    playlist.close();
    expect(await closing).toBe(false);
  });

  it('names its files and nothing else', () => {
    expect(parsePlaylistFile('init.mp4')).toEqual({ kind: 'init' });
    expect(parsePlaylistFile('seg12.m4s')).toEqual({ kind: 'segment', msn: 12 });
    expect(parsePlaylistFile('part12.3.m4s')).toEqual({ kind: 'part', msn: 12, index: 3 });
    for (const bad of [
      'input.sdp',
      '../init.mp4',
      'seg.m4s',
      'part1.m4s',
      'part1.1234.m4s',
      'init_0.mp4',
      'seg1.m4s.bak',
    ]) {
      expect(parsePlaylistFile(bad)).toBeUndefined();
    }
  });
});
