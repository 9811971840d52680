/**
 * BitrateAdapter's timing of its looks at a viewer's link. The consumer and transport are fakes
 * (this is about when the adapter samples and what it does with the counts, not about mediasoup;
 * test/abr/simulcast.test.ts runs it on real ones).
 */
import { EventEmitter } from 'node:events';
import { setTimeout as sleep } from 'node:timers/promises';
import { afterEach, describe, expect, it } from '@jest/globals';
import type { types } from 'mediasoup';
import { createLogger } from '../../media-node/src/logger.js';
import {
  BitrateAdapter,
  nackBurstAction,
  simulcastTarget,
} from '../../media-node/src/playback/BitrateAdapter.js';

/** A consumer whose outbound counters the test moves, and which emits NACK trace events on demand. */
class FakeConsumer extends EventEmitter {
  readonly observer = new EventEmitter();
  closed = false;
  traced: string[] = [];
  sent = 0;
  nacked = 0;
  statsCalls = 0;
  async enableTraceEvent(types: string[]): Promise<void> {
    this.traced = types;
  }
  async getStats() {
    this.statsCalls++;
    return [
      {
        type: 'outbound-rtp',
        packetCount: this.sent,
        nackPacketCount: this.nacked,
        fractionLost: 0,
        bitrate: 0,
      },
    ];
  }
  nack(): void {
    this.emit('trace', { type: 'nack', timestamp: 0, direction: 'in', info: {} });
  }
}

function adapterOn(consumer: FakeConsumer) {
  const applied: number[] = [];
  const adapter = new BitrateAdapter({
    consumer: consumer as unknown as types.Consumer,
    transport: { getStats: async () => [{}] } as unknown as types.Transport,
    target: { levels: 3, apply: async (level) => void applied.push(level) },
    logger: createLogger('silent'),
    policy: { settleMs: 0 },
    // No regular look within the test: only NACK bursts make it sample.
    intervalMs: 60_000,
  });
  return { adapter, applied };
}

function burst(consumer: FakeConsumer): void {
  for (let count = 0; count < 4; count++) consumer.nack();
}

const adapters: BitrateAdapter[] = [];
afterEach(() => {
  for (const adapter of adapters.splice(0)) adapter.close();
});

describe('BitrateAdapter', () => {
  it('looks at the link at once when the viewer starts sending bursts of NACKs, and steps down', async () => {
    const consumer = new FakeConsumer();
    const { adapter, applied } = adapterOn(consumer);
    adapters.push(adapter);
    await sleep(10);
    expect(consumer.traced).toEqual(['nack']);

    // A burst long after the last reading: the adapter reads the counters now (so the clean
    // time before the burst does not dilute the loss) and decides FAST_SAMPLE_MS (250 ms) later.
    consumer.sent = 1000;
    burst(consumer);
    await sleep(20);
    expect(consumer.statsCalls).toBe(1);
    expect(applied).toEqual([]);
    // Meanwhile the viewer asked again for 60 % of the packets it was sent.
    consumer.sent += 100;
    consumer.nacked += 60;
    await sleep(300);
    expect(consumer.statsCalls).toBe(2);
    expect(applied).toEqual([1]);

    // While the loss goes on, a burst soon after the last reading decides at once.
    await sleep(300);
    consumer.sent += 100;
    consumer.nacked += 60;
    burst(consumer);
    await sleep(30);
    expect(consumer.statsCalls).toBe(3);
    expect(applied).toEqual([1, 0]);
    expect(adapter.level).toBe(0);
  });

  it('does not sample on NACKs that trickle in (a clean link loses a packet now and then)', async () => {
    const consumer = new FakeConsumer();
    const { adapter } = adapterOn(consumer);
    adapters.push(adapter);
    for (let count = 0; count < 6; count++) {
      consumer.nack();
      await sleep(120);
    }
    expect(consumer.statsCalls).toBe(0);
  });

  it('stops listening to NACKs when closed', async () => {
    const consumer = new FakeConsumer();
    const { adapter } = adapterOn(consumer);
    adapter.close();
    expect(consumer.listenerCount('trace')).toBe(0);
    burst(consumer);
    await sleep(20);
    expect(consumer.statsCalls).toBe(0);
  });
});

describe('nackBurstAction', () => {
  const burstAt = (nowMs: number) => [nowMs - 90, nowMs - 60, nowMs - 30, nowMs];
  const base = { sampling: false, probing: false };

  it('waits for a burst: four NACKs within 300 ms', () => {
    expect(nackBurstAction({ ...base, nackTimes: [0, 200, 400, 600], nowMs: 600, lastSampleAtMs: 0 })).toBe(
      'none',
    );
    expect(nackBurstAction({ ...base, nackTimes: [500, 600], nowMs: 600, lastSampleAtMs: 0 })).toBe('none');
    expect(nackBurstAction({ ...base, nackTimes: burstAt(5000), nowMs: 5000, lastSampleAtMs: 0 })).toBe(
      'baseline',
    );
  });

  it('decides at once when the last reading is recent, or while a step up is on probation', () => {
    expect(nackBurstAction({ ...base, nackTimes: burstAt(5000), nowMs: 5000, lastSampleAtMs: 4600 })).toBe(
      'decide',
    );
    // The reading is 900 ms old: counted from it, the loss would be diluted — unless every packet
    // since is the new layer's.
    expect(nackBurstAction({ ...base, nackTimes: burstAt(5000), nowMs: 5000, lastSampleAtMs: 4100 })).toBe(
      'baseline',
    );
    expect(
      nackBurstAction({
        ...base,
        probing: true,
        nackTimes: burstAt(5000),
        nowMs: 5000,
        lastSampleAtMs: 4100,
      }),
    ).toBe('decide');
  });

  it('never samples twice at once, nor more often than every 250 ms', () => {
    expect(
      nackBurstAction({ ...base, sampling: true, nackTimes: burstAt(5000), nowMs: 5000, lastSampleAtMs: 0 }),
    ).toBe('none');
    expect(
      nackBurstAction({
        ...base,
        probing: true,
        nackTimes: burstAt(5000),
        nowMs: 5000,
        lastSampleAtMs: 4900,
      }),
    ).toBe('none');
  });
});

describe('simulcastTarget', () => {
  /** A consumer that records what is asked of it, in order. */
  function recordingConsumer(paused = false) {
    const calls: string[] = [];
    const consumer = {
      paused,
      async pause() {
        calls.push('pause');
        consumer.paused = true;
      },
      async resume() {
        calls.push('resume');
        consumer.paused = false;
      },
      async setPreferredLayers(layers: { spatialLayer: number }) {
        calls.push(`layers ${layers.spatialLayer}`);
      },
    };
    return { consumer: consumer as unknown as types.Consumer, calls };
  }

  it('pauses the consumer around a step down (its retransmission buffer is dropped), not around a step up', async () => {
    const { consumer, calls } = recordingConsumer();
    const target = simulcastTarget(consumer, 3);
    await target.apply(0, { down: true });
    expect(calls).toEqual(['pause', 'layers 0', 'resume']);
    calls.length = 0;
    await target.apply(1, { down: false });
    expect(calls).toEqual(['layers 1']);
  });

  it('leaves a consumer paused for another reason paused', async () => {
    const { consumer, calls } = recordingConsumer(true);
    await simulcastTarget(consumer, 3).apply(0, { down: true });
    expect(calls).toEqual(['layers 0']);
    expect(consumer.paused).toBe(true);
  });
});
