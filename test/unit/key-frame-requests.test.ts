import { describe, expect, it } from '@jest/globals';
import { containsKeyFrameRequest, keyFrameRequestSsrcs } from '../../media-node/src/relay/RelayedStream.js';
import { senderReport } from '../../media-node/src/relay/StableProducer.js';

/** PSFB (206) with format `fmt`, sender 1, media SSRC `media`, and `fci` words after. */
function psfb(fmt: number, media: number, fci: number[] = []): Buffer {
  const packet = Buffer.alloc(12 + 4 * fci.length);
  packet[0] = 0x80 | fmt;
  packet[1] = 206;
  packet.writeUInt16BE(2 + fci.length, 2);
  packet.writeUInt32BE(1, 4);
  packet.writeUInt32BE(media >>> 0, 8);
  for (const [index, word] of fci.entries()) packet.writeUInt32BE(word >>> 0, 12 + 4 * index);
  return packet;
}

describe('key frame requests in RTCP (which layer of a ladder to ask)', () => {
  it('names the media SSRC of each PLI and the FCI SSRCs of a FIR in a compound packet', () => {
    const report = senderReport(0x1234, Date.now(), 90_000, 10, 1000);
    const compound = Buffer.concat([
      report,
      psfb(1, 0xaaaa),
      psfb(4, 0, [0xbbbb, 0x01000000, 0xcccc, 0x02000000]),
    ]);
    expect(keyFrameRequestSsrcs(compound)).toEqual([0xaaaa, 0xbbbb, 0xcccc]);
    expect(containsKeyFrameRequest(compound)).toBe(true);
  });

  it('finds none in a sender report or a REMB (PSFB format 15), nor in garbage', () => {
    const report = senderReport(0x1234, Date.now(), 90_000, 10, 1000);
    expect(keyFrameRequestSsrcs(Buffer.concat([report, psfb(15, 0, [0x52454d42, 0])]))).toEqual([]);
    expect(keyFrameRequestSsrcs(Buffer.from([0x00, 0x01, 0x02]))).toEqual([]);
  });

  it('writes sender reports RFC 3550 lays out: NTP time of the wall clock, RTP time, counts', () => {
    const nowMs = Date.UTC(2026, 11, 1, 12, 0, 0, 500);
    const report = senderReport(0xdeadbeef, nowMs, 123_456, 7, 8000);
    expect(report.length).toBe(28);
    expect(report[1]).toBe(200);
    expect(report.readUInt16BE(2)).toBe(6);
    expect(report.readUInt32BE(4)).toBe(0xdeadbeef);
    expect(report.readUInt32BE(8)).toBe(Math.floor(nowMs / 1000) + 2_208_988_800);
    expect(report.readUInt32BE(12)).toBe(0x80000000); // half a second
    expect(report.readUInt32BE(16)).toBe(123_456);
    expect(report.readUInt32BE(20)).toBe(7);
    expect(report.readUInt32BE(24)).toBe(8000);
  });
});
