import { createSocket, type Socket } from 'node:dgram';
import { describe, expect, it } from '@jest/globals';
import { freeUdpPortPair } from '../../media-node/src/transcode/FfmpegLeg.js';
import { ffmpegArgs, inputSdp } from '../../media-node/src/transcode/ffmpeg.js';
import { parseProfiles, parseRenditionName, renditionName } from '../../media-node/src/transcode/profiles.js';

describe('rendition profiles', () => {
  it('parses PROFILES with defaults', () => {
    expect(parseProfiles('[{"name":"360p","width":640,"height":360,"bitrate":600000}]')).toEqual([
      { name: '360p', width: 640, height: 360, fps: 30, codec: 'VP8', bitrate: 600000 },
    ]);
    expect(parseProfiles(undefined)).toEqual([]);
  });

  it.each([
    ['not json', /JSON array/],
    ['[{"name":"x","width":641,"height":360,"bitrate":600000}]', /\[0\.width\] width must be even/],
    ['[{"name":"x","width":640,"height":360,"bitrate":600000,"codec":"AV1"}]', /\[0\.codec\]/],
    [
      '[{"name":"x","width":640,"height":360,"bitrate":600000},{"name":"x","width":320,"height":180,"bitrate":200000}]',
      /profile names must be unique/,
    ],
  ])('rejects %s with a message naming the field', (json, message) => {
    expect(() => parseProfiles(json)).toThrow(message);
  });

  it('names renditions {stream}~{profile} and parses them back', () => {
    const profiles = parseProfiles('[{"name":"360p","width":640,"height":360,"bitrate":600000}]');
    expect(renditionName('match~final', '360p')).toBe('match~final~360p');
    expect(parseRenditionName('match~final~360p', profiles)).toEqual({
      source: 'match~final',
      profile: profiles[0],
    });
    expect(parseRenditionName('match~4k', profiles)).toBeUndefined();
    expect(parseRenditionName('match', profiles)).toBeUndefined();
  });
});

describe('FFmpeg invocation', () => {
  it('describes the incoming RTP in SDP, codec parameters included', () => {
    const sdp = inputSdp({
      port: 50000,
      payloadType: 106,
      mimeType: 'video/H264',
      clockRate: 90000,
      parameters: { 'packetization-mode': 1, 'profile-level-id': '42e01f' },
    });
    expect(sdp).toContain('m=video 50000 RTP/AVP 106\r\n');
    expect(sdp).toContain('a=rtpmap:106 H264/90000\r\n');
    expect(sdp).toContain('a=fmtp:106 packetization-mode=1;profile-level-id=42e01f\r\n');
  });

  it('encodes with a one-second GOP and sends RTP from a fixed port with a fixed SSRC', () => {
    const args = ffmpegArgs({
      input: { sdpPath: '/tmp/in.sdp' },
      output: {
        profile: { name: '360p', width: 640, height: 360, fps: 25, codec: 'VP8', bitrate: 500_000 },
        payloadType: 96,
        ssrc: 1234,
        port: 40000,
        localPort: 40010,
      },
    });
    const value = (flag: string) => args[args.indexOf(flag) + 1];
    expect(value('-c:v')).toBe('libvpx');
    expect(value('-g')).toBe('25');
    expect(value('-vf')).toBe('scale=640:360,fps=25');
    expect(value('-ssrc')).toBe('1234');
    expect(args.at(-1)).toBe('rtp://127.0.0.1:40000?rtcpport=40000&localrtpport=40010&pkt_size=1200');
    const h264 = ffmpegArgs({
      input: { sdpPath: '/tmp/in.sdp' },
      output: {
        profile: { name: '720p', width: 1280, height: 720, fps: 30, codec: 'H264', bitrate: 2_000_000 },
        payloadType: 106,
        ssrc: 1,
        port: 1,
        localPort: 2,
      },
    });
    expect(h264[h264.indexOf('-c:v') + 1]).toBe('libx264');
    expect(h264[h264.indexOf('-x264-params') + 1]).toBe(
      'keyint=30:min-keyint=30:scenecut=0:repeat-headers=1',
    );
  });
});

describe('UDP port pairs for FFmpeg', () => {
  it('hands out pairs whose two ports are both free, and never the same pair twice', async () => {
    // A busy machine: one in twenty ephemeral ports taken by other sockets.
    const taken = await Promise.all(
      Array.from(
        { length: 1500 },
        () =>
          new Promise<Socket>((resolve) => {
            const socket = createSocket('udp4');
            socket.bind(0, '127.0.0.1', () => resolve(socket));
          }),
      ),
    );
    const canBind = (port: number) =>
      new Promise<boolean>((resolve) => {
        const socket = createSocket('udp4');
        socket.once('error', () => {
          socket.close();
          resolve(false);
        });
        socket.bind(port, '127.0.0.1', () => {
          socket.close();
          resolve(true);
        });
      });
    try {
      const pairs: number[] = [];
      const unbindable: number[] = [];
      for (let index = 0; index < 1000; index++) {
        const port = await freeUdpPortPair();
        pairs.push(port);
        expect(port % 2).toBe(0);
        if (!(await canBind(port)) || !(await canBind(port + 1))) unbindable.push(port);
      }
      // Neither a port of a pair in use by another socket, nor a pair handed out twice (the
      // FFmpeg it went to may not have bound it yet).
      expect(unbindable).toEqual([]);
      expect(new Set(pairs).size).toBe(pairs.length);
    } finally {
      for (const socket of taken) socket.close();
    }
  }, 60_000);
});
