import { describe, expect, it } from '@jest/globals';
import {
  isH264KeyFrameStart,
  isVp8KeyFrameStart,
  parseRtpHeader,
  RtpRewriter,
} from '../../media-node/src/relay/RtpRewriter.js';

/** A minimal RTP packet (version 2, no CSRC/extension/padding) carrying `payload`. */
function rtp(options: { seq: number; ts: number; ssrc?: number; pt?: number; payload?: number[] }): Buffer {
  const packet = Buffer.alloc(12 + (options.payload?.length ?? 1));
  packet[0] = 0x80;
  packet[1] = options.pt ?? 100;
  packet.writeUInt16BE(options.seq & 0xffff, 2);
  packet.writeUInt32BE(options.ts >>> 0, 4);
  packet.writeUInt32BE(options.ssrc ?? 1111, 8);
  Buffer.from(options.payload ?? [0]).copy(packet, 12);
  return packet;
}

const header = (packet: Buffer) => ({
  pt: packet[1]! & 0x7f,
  marker: packet[1]! >> 7,
  seq: packet.readUInt16BE(2),
  ts: packet.readUInt32BE(4),
  ssrc: packet.readUInt32BE(8),
});

// VP8 payload descriptor S=1, PID=0 then a payload header whose P bit is 0 (key frame) or 1.
const VP8_KEY = [0x10, 0x00];
const VP8_DELTA = [0x10, 0x01];
const VP8_CONTINUATION = [0x00, 0x00];

describe('RtpRewriter', () => {
  it('rewrites SSRC and payload type, keeps the marker bit, and starts at the given sequence number', () => {
    const rewriter = new RtpRewriter({
      outSsrc: 0xdeadbeef,
      outPayloadType: 111,
      clockRate: 48_000,
      mimeType: 'audio/opus',
      initialSeq: 999,
    });
    const packet = rtp({ seq: 40_000, ts: 7, pt: 109 });
    packet[1] = packet[1]! | 0x80;
    const out = rewriter.rewrite(packet, 0)!;
    expect(header(out)).toEqual(expect.objectContaining({ pt: 111, marker: 1, seq: 1000, ssrc: 0xdeadbeef }));
    expect(rewriter.forwarded).toBe(1);
  });

  it('continues sequence numbers and advances timestamps by the wall time across an input switch', () => {
    const rewriter = new RtpRewriter({
      outSsrc: 1,
      outPayloadType: 111,
      clockRate: 48_000,
      mimeType: 'audio/opus',
    });
    const first = header(rewriter.rewrite(rtp({ seq: 65_534, ts: 1_000 }), 1_000)!);
    const second = header(rewriter.rewrite(rtp({ seq: 65_535, ts: 1_960 }), 1_020)!);
    expect(second.seq).toBe((first.seq + 1) & 0xffff);
    expect(second.ts - first.ts).toBe(960); // within one input: the input's own spacing

    rewriter.switchInput();
    // The new input numbers from elsewhere; 100 ms of wall time passed since the last packet out.
    const switched = header(rewriter.rewrite(rtp({ seq: 5, ts: 123_456_789, ssrc: 2222 }), 1_120)!);
    expect(switched.seq).toBe((second.seq + 1) & 0xffff);
    expect(switched.ts).toBe((second.ts + 4_800) >>> 0);
    const next = header(rewriter.rewrite(rtp({ seq: 6, ts: 123_456_789 + 960, ssrc: 2222 }), 1_140)!);
    expect(next.seq).toBe((switched.seq + 1) & 0xffff);
    expect(next.ts).toBe((switched.ts + 960) >>> 0);
  });

  it('wraps sequence numbers and timestamps around 2^16 and 2^32', () => {
    const rewriter = new RtpRewriter({
      outSsrc: 1,
      outPayloadType: 111,
      clockRate: 48_000,
      mimeType: 'audio/opus',
      initialSeq: 0xfffe,
    });
    expect(header(rewriter.rewrite(rtp({ seq: 10, ts: 0xffff_ffff }), 0)!).seq).toBe(0xffff);
    const wrapped = header(rewriter.rewrite(rtp({ seq: 11, ts: 959 }), 20)!);
    expect(wrapped.seq).toBe(0);
  });

  it('does not continue from a late, reordered packet after a switch', () => {
    const rewriter = new RtpRewriter({
      outSsrc: 1,
      outPayloadType: 111,
      clockRate: 48_000,
      mimeType: 'audio/opus',
    });
    const a = header(rewriter.rewrite(rtp({ seq: 100, ts: 0 }), 0)!);
    header(rewriter.rewrite(rtp({ seq: 102, ts: 1_920 }), 40)!);
    const late = header(rewriter.rewrite(rtp({ seq: 101, ts: 960 }), 41)!);
    expect(late.seq).toBe((a.seq + 1) & 0xffff);
    rewriter.switchInput();
    const switched = header(rewriter.rewrite(rtp({ seq: 9, ts: 9 }), 41)!);
    expect(switched.seq).toBe((a.seq + 3) & 0xffff); // after 102's, not after the late 101's
  });

  it('holds VP8 back until the first packet of a key frame, at the start and after every switch', () => {
    const rewriter = new RtpRewriter({
      outSsrc: 1,
      outPayloadType: 96,
      clockRate: 90_000,
      mimeType: 'video/VP8',
    });
    expect(rewriter.waitingForKeyFrame).toBe(true);
    expect(rewriter.rewrite(rtp({ seq: 1, ts: 0, payload: VP8_DELTA }), 0)).toBeUndefined();
    expect(rewriter.rewrite(rtp({ seq: 2, ts: 0, payload: VP8_CONTINUATION }), 0)).toBeUndefined();
    const key = rewriter.rewrite(rtp({ seq: 3, ts: 3_000, payload: VP8_KEY }), 0);
    expect(key).toBeDefined();
    expect(rewriter.waitingForKeyFrame).toBe(false);
    expect(rewriter.rewrite(rtp({ seq: 4, ts: 3_000, payload: VP8_CONTINUATION }), 0)).toBeDefined();
    expect(rewriter.rewrite(rtp({ seq: 5, ts: 6_000, payload: VP8_DELTA }), 33)).toBeDefined();

    rewriter.switchInput();
    expect(rewriter.rewrite(rtp({ seq: 70, ts: 0, payload: VP8_DELTA }), 50)).toBeUndefined();
    const afterSwitch = rewriter.rewrite(rtp({ seq: 71, ts: 0, payload: VP8_KEY }), 50)!;
    expect(header(afterSwitch).seq).toBe((header(key!).seq + 3) & 0xffff);
    expect(rewriter.forwarded).toBe(4);
    expect(rewriter.dropped).toBe(3);
  });

  it('drops what is not RTP version 2', () => {
    const rewriter = new RtpRewriter({
      outSsrc: 1,
      outPayloadType: 111,
      clockRate: 48_000,
      mimeType: 'audio/opus',
    });
    const bad = rtp({ seq: 1, ts: 0 });
    bad[0] = 0x40;
    expect(rewriter.rewrite(bad, 0)).toBeUndefined();
    expect(rewriter.rewrite(Buffer.alloc(8), 0)).toBeUndefined();
    expect(rewriter.dropped).toBe(2);
  });
});

describe('parseRtpHeader', () => {
  it('skips CSRCs and the header extension and leaves out padding', () => {
    const packet = Buffer.alloc(12 + 8 + 8 + 5 + 3); // header, 2 CSRCs, extension, payload, padding
    packet[0] = 0x80 | 0x20 | 0x10 | 2; // padding, extension, 2 CSRCs
    packet.writeUInt16BE(0xbede, 20);
    packet.writeUInt16BE(1, 22); // one 32-bit word of extension
    packet[packet.length - 1] = 3; // 3 bytes of padding
    expect(parseRtpHeader(packet)).toEqual({ payloadOffset: 28, payloadEnd: packet.length - 3 });
  });

  it('rejects truncated packets', () => {
    const packet = Buffer.alloc(14);
    packet[0] = 0x90; // extension announced, but no room for its header
    expect(parseRtpHeader(packet)).toBeUndefined();
    expect(parseRtpHeader(Buffer.from([0x80, 0, 0]))).toBeUndefined();
  });
});

describe('key frame detection', () => {
  it('finds VP8 key frame starts, with and without a 7- or 15-bit picture id', () => {
    expect(isVp8KeyFrameStart(Buffer.from(VP8_KEY))).toBe(true);
    expect(isVp8KeyFrameStart(Buffer.from(VP8_DELTA))).toBe(false);
    expect(isVp8KeyFrameStart(Buffer.from(VP8_CONTINUATION))).toBe(false);
    expect(isVp8KeyFrameStart(Buffer.from([0x90, 0x80, 0x05, 0x00]))).toBe(true); // X, I, 7-bit id
    expect(isVp8KeyFrameStart(Buffer.from([0x90, 0x80, 0x85, 0x01, 0x00]))).toBe(true); // 15-bit id
    expect(isVp8KeyFrameStart(Buffer.from([0x90, 0x80, 0x85, 0x01, 0x01]))).toBe(false);
    expect(isVp8KeyFrameStart(Buffer.from([0x11, 0x00]))).toBe(false); // partition 1, not the start
    expect(isVp8KeyFrameStart(Buffer.alloc(0))).toBe(false);
  });

  it('finds H.264 IDR starts: single NAL, STAP-A with SPS, FU-A start of an IDR slice', () => {
    expect(isH264KeyFrameStart(Buffer.from([0x65]))).toBe(true); // IDR slice
    expect(isH264KeyFrameStart(Buffer.from([0x67]))).toBe(true); // SPS
    expect(isH264KeyFrameStart(Buffer.from([0x41]))).toBe(false); // non-IDR slice
    expect(isH264KeyFrameStart(Buffer.from([0x78, 0x00, 0x02, 0x67, 0x42, 0x00, 0x01, 0x68]))).toBe(true);
    expect(isH264KeyFrameStart(Buffer.from([0x78, 0x00, 0x01, 0x41, 0x00, 0x01, 0x41]))).toBe(false);
    expect(isH264KeyFrameStart(Buffer.from([0x7c, 0x85]))).toBe(true); // FU-A, S=1, IDR
    expect(isH264KeyFrameStart(Buffer.from([0x7c, 0x05]))).toBe(false); // FU-A continuation
    expect(isH264KeyFrameStart(Buffer.from([0x7c, 0x81]))).toBe(false); // FU-A start of a non-IDR slice
  });
});
