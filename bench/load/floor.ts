/**
 * The floor of the viewers-per-worker benchmark: a bare mediasoup fan-out with no rtccdn code —
 * one worker, one WebRtcServer, one router; WHIP creates producers, WHEP creates consumers on it,
 * SDP handled just far enough for rtcload's offers. Whatever rtccdn costs beyond this per viewer
 * is rtccdn's own.
 *
 *   PORT=18300 RTC_PORT=47300 node --import tsx bench/load/floor.ts
 */

import { randomUUID } from 'node:crypto';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { types } from 'mediasoup';
import * as mediasoup from 'mediasoup';
import * as sdpTransform from 'sdp-transform';

const port = Number(process.env.PORT ?? 18300);
const rtcPort = Number(process.env.RTC_PORT ?? 47300);

const worker = await mediasoup.createWorker({ logLevel: 'warn' });
const webRtcServer = await worker.createWebRtcServer({
  listenInfos: [{ protocol: 'udp', ip: '127.0.0.1', port: rtcPort }],
});
const router = await worker.createRouter({
  mediaCodecs: [
    { kind: 'audio', mimeType: 'audio/opus', clockRate: 48000, channels: 2, preferredPayloadType: 111 },
    { kind: 'video', mimeType: 'video/VP8', clockRate: 90000, preferredPayloadType: 96 },
    {
      kind: 'video',
      mimeType: 'video/H264',
      clockRate: 90000,
      preferredPayloadType: 106,
      parameters: { 'packetization-mode': 1, 'profile-level-id': '42e01f', 'level-asymmetry-allowed': 1 },
    },
  ],
});
const producers = new Map<string, types.Producer[]>();
const transports = new Map<string, types.WebRtcTransport>();

interface Section {
  mid: string;
  kind: types.MediaKind;
  codec: types.RtpCodecParameters;
  ssrc?: number;
}

function parse(sdp: string) {
  const session = sdpTransform.parse(sdp);
  const first = session.media[0]!;
  const fingerprint = first.fingerprint ?? session.fingerprint!;
  const sections: Section[] = session.media.map((m) => {
    const rtp = m.rtp[0]!;
    const [kind] = m.type.split('/') as [types.MediaKind];
    const fmtp = m.fmtp.find((f) => f.payload === rtp.payload);
    return {
      mid: String(m.mid),
      kind,
      codec: {
        mimeType: `${kind}/${rtp.codec}`,
        payloadType: rtp.payload,
        clockRate: rtp.rate!,
        ...(kind === 'audio' ? { channels: Number(rtp.encoding ?? 2) } : {}),
        parameters: fmtp ? sdpTransform.parseParams(fmtp.config) : {},
        rtcpFeedback: [],
      },
      ssrc: m.ssrcs?.[0] ? Number(m.ssrcs[0].id) : undefined,
    };
  });
  return {
    ufrag: String(first.iceUfrag ?? session.iceUfrag),
    pwd: String(first.icePwd ?? session.icePwd),
    fingerprint: { algorithm: fingerprint.type as types.FingerprintAlgorithm, value: fingerprint.hash },
    sections,
  };
}

function answer(
  transport: types.WebRtcTransport,
  parts: { section: Section; direction: string; codec: types.RtpCodecParameters; ssrc?: number }[],
): string {
  const fp = transport.dtlsParameters.fingerprints.find((f) => f.algorithm === 'sha-256')!;
  const lines = [
    'v=0',
    `o=floor ${Date.now()} 1 IN IP4 127.0.0.1`,
    's=-',
    't=0 0',
    'a=ice-lite',
    `a=fingerprint:sha-256 ${fp.value}`,
    `a=group:BUNDLE ${parts.map((p) => p.section.mid).join(' ')}`,
  ];
  for (const { section, direction, codec, ssrc } of parts) {
    const name = codec.mimeType.split('/')[1];
    lines.push(
      `m=${section.kind} 9 UDP/TLS/RTP/SAVPF ${codec.payloadType}`,
      'c=IN IP4 127.0.0.1',
      `a=mid:${section.mid}`,
      `a=${direction}`,
      'a=rtcp-mux',
      `a=ice-ufrag:${transport.iceParameters.usernameFragment}`,
      `a=ice-pwd:${transport.iceParameters.password}`,
      'a=setup:passive',
      `a=rtpmap:${codec.payloadType} ${name}/${codec.clockRate}${codec.channels ? `/${codec.channels}` : ''}`,
    );
    for (const c of transport.iceCandidates) {
      lines.push(`a=candidate:${c.foundation} 1 ${c.protocol} ${c.priority} ${c.address} ${c.port} typ host`);
    }
    if (ssrc !== undefined) lines.push(`a=ssrc:${ssrc} cname:floor`);
  }
  return `${lines.join('\r\n')}\r\n`;
}

async function whip(stream: string, sdp: string): Promise<[string, string]> {
  const offer = parse(sdp);
  const transport = await router.createWebRtcTransport({ webRtcServer, enableUdp: true, enableTcp: false });
  await transport.connect({ dtlsParameters: { role: 'client', fingerprints: [offer.fingerprint] } });
  const list: types.Producer[] = [];
  for (const section of offer.sections) {
    list.push(
      await transport.produce({
        kind: section.kind,
        rtpParameters: { mid: section.mid, codecs: [section.codec], encodings: [{ ssrc: section.ssrc! }] },
      }),
    );
  }
  producers.set(stream, list);
  const id = randomUUID();
  transports.set(id, transport);
  const parts = offer.sections.map((section) => ({ section, direction: 'recvonly', codec: section.codec }));
  return [id, answer(transport, parts)];
}

async function whep(stream: string, sdp: string): Promise<[string, string]> {
  const offer = parse(sdp);
  const list = producers.get(stream);
  if (!list) throw Object.assign(new Error('no such stream'), { status: 404 });
  const transport = await router.createWebRtcTransport({ webRtcServer, enableUdp: true, enableTcp: false });
  await transport.connect({ dtlsParameters: { role: 'client', fingerprints: [offer.fingerprint] } });
  const parts = [];
  for (const section of offer.sections) {
    const producer = list.find((p) => p.kind === section.kind);
    if (!producer) continue;
    const consumer = await transport.consume({
      producerId: producer.id,
      rtpCapabilities: { codecs: router.rtpCapabilities.codecs!.filter((c) => c.kind === section.kind) },
      mid: section.mid,
    });
    parts.push({
      section,
      direction: 'sendonly',
      codec: consumer.rtpParameters.codecs[0]!,
      ssrc: consumer.rtpParameters.encodings![0]!.ssrc,
    });
  }
  const id = randomUUID();
  transports.set(id, transport);
  return [id, answer(transport, parts)];
}

async function body(request: IncomingMessage): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const chunk of request) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks).toString('utf8');
}

createServer((request: IncomingMessage, response: ServerResponse) => {
  const [, protocol, stream, id] = (request.url ?? '').split('/');
  void (async () => {
    try {
      if (request.url === '/readyz') return void response.writeHead(200).end('ok');
      if (request.method === 'DELETE' && id) {
        transports.get(id)?.close();
        transports.delete(id);
        return void response.writeHead(200).end();
      }
      if (request.method !== 'POST' || !stream) return void response.writeHead(404).end();
      const [session, sdp] =
        protocol === 'whip'
          ? await whip(stream, await body(request))
          : await whep(stream, await body(request));
      response
        .writeHead(201, { 'Content-Type': 'application/sdp', Location: `/${protocol}/${stream}/${session}` })
        .end(sdp);
    } catch (error) {
      response.writeHead((error as { status?: number }).status ?? 500).end((error as Error).message);
    }
  })();
}).listen(port, '127.0.0.1');

process.on('SIGTERM', () => {
  worker.close();
  process.exit(0);
});
