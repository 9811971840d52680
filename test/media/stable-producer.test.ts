import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import type { types } from 'mediasoup';
import * as mediasoup from 'mediasoup';
import { internalCodecParameters, PUBLISHABLE_CODECS } from '../../media-node/src/media/codecs.js';
import { StableProducer } from '../../media-node/src/relay/StableProducer.js';
import { eventually } from '../../scripts/harness/node.js';

function rtp(seq: number, ts: number, ssrc: number, payload: number[]): Buffer {
  const packet = Buffer.alloc(12 + payload.length);
  packet[0] = 0x80;
  packet[1] = 100; // the input's own numbering: the stable producer's is the router's
  packet.writeUInt16BE(seq & 0xffff, 2);
  packet.writeUInt32BE(ts >>> 0, 4);
  packet.writeUInt32BE(ssrc, 8);
  Buffer.from(payload).copy(packet, 12);
  return packet;
}

const VP8_KEY = [0x10, 0x00, 0x9d, 0x01, 0x2a];
const VP8_DELTA = [0x10, 0x01, 0x00, 0x00, 0x00];

/** A stable producer on a real mediasoup router, consumed as a viewer's consumer would. */
describe('StableProducer (real mediasoup)', () => {
  let worker: types.Worker;
  let router: types.Router;
  beforeAll(async () => {
    worker = await mediasoup.createWorker({ logLevel: 'error' });
    router = await worker.createRouter({ mediaCodecs: [PUBLISHABLE_CODECS[1]!] });
  });
  afterAll(() => worker.close());

  it('gives its consumer one continuous RTP line across an input switch, starting at key frames', async () => {
    const transport = await router.createDirectTransport();
    const vp8 = router.rtpCapabilities.codecs!.find((codec) => codec.mimeType === 'video/VP8')!;
    const stable = await StableProducer.create(transport, {
      kind: 'video',
      codec: internalCodecParameters(vp8),
      cname: 'test',
      appData: {},
    });
    expect(stable.kind).toBe('video');
    const consumer = await transport.consume({
      producerId: stable.producer.id,
      rtpCapabilities: router.rtpCapabilities,
    });
    const received: { seq: number; ts: number; ssrc: number; pt: number }[] = [];
    consumer.on('rtp', (packet) =>
      received.push({
        pt: packet[1]! & 0x7f,
        seq: packet.readUInt16BE(2),
        ts: packet.readUInt32BE(4),
        ssrc: packet.readUInt32BE(8),
      }),
    );

    // Input A: a delta frame (held back), then a key frame and two more.
    expect(stable.send(rtp(1000, 90_000, 0xaaaa, VP8_DELTA))).toBe(false);
    for (let i = 1; i <= 3; i++) {
      expect(stable.send(rtp(1000 + i, 90_000 + i * 3000, 0xaaaa, i === 1 ? VP8_KEY : VP8_DELTA))).toBe(true);
    }
    // Input B numbers from elsewhere entirely.
    stable.switchInput();
    expect(stable.send(rtp(40_000, 7, 0xbbbb, VP8_DELTA))).toBe(false);
    for (let i = 1; i <= 3; i++) {
      expect(stable.send(rtp(40_000 + i, 7 + i * 3000, 0xbbbb, i === 1 ? VP8_KEY : VP8_DELTA))).toBe(true);
    }

    expect(await eventually(() => received.length === 6, 5000)).toBe(true);
    expect(new Set(received.map((packet) => packet.ssrc)).size).toBe(1);
    expect(new Set(received.map((packet) => packet.pt))).toEqual(new Set([vp8.preferredPayloadType]));
    for (let i = 1; i < received.length; i++) {
      expect(received[i]!.seq).toBe((received[i - 1]!.seq + 1) & 0xffff);
      expect((received[i]!.ts - received[i - 1]!.ts) >>> 0 < 90_000).toBe(true); // no jump
    }
    expect(stable.counters).toEqual({ forwarded: 6, dropped: 2 });
    transport.close();
  });
});

/** A simulcast stable producer: every layer relayed on its own line, switchable by its consumers. */
describe('StableProducer with simulcast layers (real mediasoup)', () => {
  let worker: types.Worker;
  let router: types.Router;
  beforeAll(async () => {
    worker = await mediasoup.createWorker({ logLevel: 'error' });
    router = await worker.createRouter({ mediaCodecs: [PUBLISHABLE_CODECS[1]!] });
  });
  afterAll(() => worker.close());

  it('routes each input SSRC to its layer and lets a simulcast consumer switch layers (sender reports)', async () => {
    const transport = await router.createDirectTransport();
    const vp8 = router.rtpCapabilities.codecs!.find((codec) => codec.mimeType === 'video/VP8')!;
    const stable = await StableProducer.create(transport, {
      kind: 'video',
      codec: internalCodecParameters(vp8),
      cname: 'test',
      appData: {},
      layers: [{}, {}, {}],
    });
    expect(stable.layerCount).toBe(3);
    expect(stable.producer.type).toBe('simulcast');
    const outSsrcs = stable.producer.rtpParameters.encodings!.map((encoding) => encoding.ssrc);
    expect(new Set(outSsrcs).size).toBe(3);

    const consumer = await transport.consume({
      producerId: stable.producer.id,
      rtpCapabilities: router.rtpCapabilities,
    });
    expect(consumer.type).toBe('simulcast');
    const layersSeen: number[] = [];
    consumer.on('layerschange', (layers) => {
      if (layers) layersSeen.push(layers.spatialLayer);
    });
    let received = 0;
    consumer.on('rtp', () => received++);

    // Three inputs, one per layer, each with its own numbering; a key frame every 10 packets.
    const inputs = [0x1111, 0x2222, 0x3333];
    stable.switchInput(inputs);
    expect(stable.send(rtp(1, 1, 0x9999, VP8_KEY))).toBe(false); // not one of the layers
    let tick = 0;
    const feeder = setInterval(() => {
      tick++;
      for (const [layer, ssrc] of inputs.entries()) {
        stable.send(
          rtp(layer * 1000 + tick, layer * 50_000 + tick * 3000, ssrc, tick % 10 === 1 ? VP8_KEY : VP8_DELTA),
        );
      }
    }, 30);
    try {
      // The consumer starts on the top layer; asked for the lowest, it can only switch once the
      // layers' sender reports let it map their timestamps onto each other.
      expect(await eventually(() => consumer.currentLayers?.spatialLayer === 2, 10_000)).toBe(true);
      await consumer.setPreferredLayers({ spatialLayer: 0 });
      expect(await eventually(() => consumer.currentLayers?.spatialLayer === 0, 10_000)).toBe(true);
      await consumer.setPreferredLayers({ spatialLayer: 1 });
      expect(await eventually(() => consumer.currentLayers?.spatialLayer === 1, 10_000)).toBe(true);
      expect(layersSeen.slice(-2)).toEqual([0, 1]);
      expect(received).toBeGreaterThan(0);
    } finally {
      clearInterval(feeder);
      transport.close();
    }
  }, 30_000);
});
