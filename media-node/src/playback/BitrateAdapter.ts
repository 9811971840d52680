import type { types } from 'mediasoup';
import { TypedEmitter } from '../../contract/runtime.js';
import type { Logger } from '../logger.js';
import {
  type AdaptationPolicy,
  type AdaptationState,
  DEFAULT_ADAPTATION_POLICY,
  decideLevel,
  initialAdaptationState,
} from './adaptation.js';

/** How often the viewer's link is looked at (receiver reports come about once a second). */
const SAMPLE_INTERVAL_MS = 1000;
/**
 * A viewer that sends this many NACKs within NACK_BURST_WINDOW_MS is losing packets now: its link
 * is looked at at once, and again every FAST_SAMPLE_MS while the burst lasts, rather than at the
 * next tick (a lossy link freezes the picture until the layer changes). NACKs cost nothing to
 * watch on a clean link: there are none.
 */
const NACK_BURST = 4;
const NACK_BURST_WINDOW_MS = 300;
const FAST_SAMPLE_MS = 250;

/** What the adapter moves between: simulcast layers of one consumer (renditions later). */
export interface AdaptationTarget {
  /** Levels there are, 0 the lowest. */
  readonly levels: number;
  /**
   * Makes the viewer get `level` (it may take a key frame to show). `down`: the viewer's link
   * is losing packets, and what it asks again for of the level above should not be sent.
   */
  apply(level: number, change: { down: boolean }): Promise<void>;
}

export type BitrateAdapterEvents = {
  levelchange: [level: number, previous: number];
};

export interface BitrateAdapterOptions {
  /** The viewer's video consumer: its receiver reports say what the link loses. */
  consumer: types.Consumer;
  /** The viewer's transport: mediasoup's bandwidth estimate, when the viewer negotiated one. */
  transport: types.Transport;
  /** The simulcast producer consumed: what each layer takes now (optional). */
  producer?: types.Producer | undefined;
  target: AdaptationTarget;
  logger: Logger;
  policy?: Partial<Omit<AdaptationPolicy, 'levels'>>;
  intervalMs?: number;
}

/**
 * Automatic bitrate adaptation for one viewer: every interval, and at once when the viewer starts
 * sending bursts of NACKs, it reads the viewer's packet loss
 * (its RTCP receiver reports and NACKs, which every WebRTC player sends) and mediasoup's bandwidth estimate
 * (only when the viewer's offer allows one), asks decideLevel() for the level, and applies it to
 * the target. Most players offer header extension ids mediasoup cannot send with, so they get no
 * estimate: loss is the signal that always works. Closing it (or the consumer closing) stops it.
 */
export class BitrateAdapter extends TypedEmitter<BitrateAdapterEvents> {
  readonly #options: BitrateAdapterOptions;
  readonly #policy: AdaptationPolicy;
  readonly #timer: NodeJS.Timeout;
  #state: AdaptationState;
  #sampling = false;
  #closed = false;
  /** The last loss the viewer reported (0..1), for introspection. */
  #lastFractionLost: number | undefined;
  /** Packets sent and packets the viewer asked again for (NACK), at the previous sample. */
  #previousCounts: { sent: number; nacked: number } | undefined;
  /** When the viewer's latest NACKs arrived (at most NACK_BURST of them), and the last sample. */
  readonly #nackTimes: number[] = [];
  #lastSampleAt = 0;
  /** The sample that decides after a burst's baseline reading. */
  #followUp: NodeJS.Timeout | undefined;
  readonly #onTrace = (trace: types.ConsumerTraceEventData) => {
    if (trace.type === 'nack') this.#onNack();
  };

  constructor(options: BitrateAdapterOptions) {
    super();
    this.#options = options;
    this.#policy = { ...DEFAULT_ADAPTATION_POLICY, ...options.policy, levels: options.target.levels };
    // Start at the top: a player on a good link should not wait for proof, and loss on a weak
    // one brings it down within a couple of intervals.
    this.#state = initialAdaptationState(options.target.levels - 1, Date.now(), this.#policy);
    this.#timer = setInterval(() => void this.#sample(), options.intervalMs ?? SAMPLE_INTERVAL_MS);
    this.#timer.unref();
    options.consumer.observer.once('close', () => this.close());
    options.consumer.on('trace', this.#onTrace);
    options.consumer.enableTraceEvent(['nack']).catch((error: unknown) => {
      // Without it the link is still looked at every interval: slower to react, not wrong.
      if (!options.consumer.closed)
        options.logger.warn({ err: error }, 'bitrate adaptation: NACK trace not available');
    });
  }

  #onNack(): void {
    const now = Date.now();
    this.#nackTimes.push(now);
    if (this.#nackTimes.length > NACK_BURST) this.#nackTimes.shift();
    const action = nackBurstAction({
      nackTimes: this.#nackTimes,
      nowMs: now,
      lastSampleAtMs: this.#lastSampleAt,
      sampling: this.#sampling,
      probing: this.#state.lastUpAtMs !== undefined && now - this.#state.lastUpAtMs < this.#policy.settleMs,
    });
    if (action === 'decide') void this.#sample();
    if (action !== 'baseline') return;
    void this.#sample({ baselineOnly: true });
    this.#followUp ??= setTimeout(() => {
      this.#followUp = undefined;
      void this.#sample();
    }, FAST_SAMPLE_MS);
  }

  /** The level the viewer is meant to get now, and the loss last reported (introspection). */
  get level(): number {
    return this.#state.level;
  }

  get lastFractionLost(): number | undefined {
    return this.#lastFractionLost;
  }

  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    clearInterval(this.#timer);
    clearTimeout(this.#followUp);
    this.#options.consumer.off('trace', this.#onTrace);
  }

  /** What each layer of the source takes now (bit/s, lowest first), if the adapter knows them. */
  async #layerBitrates(): Promise<number[] | undefined> {
    const { producer } = this.#options;
    if (!producer || producer.closed) return undefined;
    return layerBitrates(producer, this.#options.intervalMs ?? SAMPLE_INTERVAL_MS);
  }

  async #sample({ baselineOnly = false } = {}): Promise<void> {
    if (this.#closed || this.#sampling) return;
    this.#sampling = true;
    this.#lastSampleAt = Date.now();
    try {
      const { consumer, transport } = this.#options;
      const [consumerStats, transportStats] = await Promise.all([
        consumer.getStats(),
        baselineOnly ? [] : transport.getStats(),
      ]);
      if (this.#closed) return;
      const outbound = consumerStats.find((stats) => stats.type === 'outbound-rtp');
      if (!outbound) return;
      const previous = this.#state.level;
      // RTCP's fraction lost is in 1/256ths. A player counts a packet it got back through a
      // retransmission as received, so on a link that drops what does not fit, its reports show
      // little loss while it keeps asking for packets again: the share of packets it NACKed
      // since the last sample is loss too.
      const counts = { sent: outbound.packetCount ?? 0, nacked: outbound.nackPacketCount ?? 0 };
      const previousCounts = this.#previousCounts;
      this.#previousCounts = counts;
      if (baselineOnly) return;
      const sent = previousCounts ? counts.sent - previousCounts.sent : 0;
      const nacked = previousCounts ? counts.nacked - previousCounts.nacked : 0;
      const nackedShare = sent > 0 ? Math.min(1, Math.max(0, nacked / sent)) : 0;
      this.#lastFractionLost = Math.max((outbound.fractionLost ?? 0) / 256, nackedShare);
      this.#state = decideLevel(
        this.#state,
        {
          nowMs: Date.now(),
          fractionLost: this.#lastFractionLost,
          freshLoss: nackedShare,
          deliveredBitrate: (outbound.bitrate ?? 0) * (1 - this.#lastFractionLost),
          levelBitrates: await this.#layerBitrates(),
          availableBitrate: (transportStats[0] as { availableOutgoingBitrate?: number } | undefined)
            ?.availableOutgoingBitrate,
        },
        this.#policy,
      );
      if (this.#state.level !== previous) {
        this.#options.logger.debug(
          { level: this.#state.level, previous },
          'bitrate adaptation: level change',
        );
        await this.#options.target.apply(this.#state.level, { down: this.#state.level < previous });
        this.emit('levelchange', this.#state.level, previous);
      }
    } catch (error) {
      // The consumer or transport closed between two samples: the session is ending.
      if (!this.#options.consumer.closed)
        this.#options.logger.warn({ err: error }, 'bitrate adaptation sample failed');
    } finally {
      this.#sampling = false;
    }
  }
}

/**
 * What a NACK arriving at `nowMs` calls for (`nackTimes`: the latest ones, this one last):
 *  - nothing, unless it completes a burst (NACK_BURST within NACK_BURST_WINDOW_MS) and no reading
 *    is under way or less than FAST_SAMPLE_MS old;
 *  - `decide` now, when the last reading is recent (≤ 2 × FAST_SAMPLE_MS: the loss since is this
 *    burst's), or while a step up is on probation (every packet since the reading that made it
 *    is the new layer's: a failed step up goes back at once);
 *  - else `baseline`: the last reading predates the burst, and loss counted from it would be
 *    averaged with the clean time before (the link taken for wider than it is). Read the
 *    counters now and decide FAST_SAMPLE_MS later.
 */
export function nackBurstAction(input: {
  nackTimes: readonly number[];
  nowMs: number;
  lastSampleAtMs: number;
  sampling: boolean;
  probing: boolean;
}): 'none' | 'decide' | 'baseline' {
  const { nackTimes, nowMs, lastSampleAtMs } = input;
  const burst = nackTimes.length >= NACK_BURST && nowMs - nackTimes.at(-NACK_BURST)! <= NACK_BURST_WINDOW_MS;
  const sinceSample = nowMs - lastSampleAtMs;
  if (!burst || input.sampling || sinceSample < FAST_SAMPLE_MS) return 'none';
  if (input.probing || sinceSample <= 2 * FAST_SAMPLE_MS) return 'decide';
  return 'baseline';
}

/**
 * The producer's layer bitrates, asked of the worker at most once per `maxAgeMs` whatever the
 * number of viewers sampling them: every viewer of a stream on this worker adapts against the
 * same producer, and one request per viewer per second would grow with the audience.
 */
const layerBitrateCache = new WeakMap<
  types.Producer,
  { at: number; bitrates: Promise<number[] | undefined> }
>();

function layerBitrates(producer: types.Producer, maxAgeMs: number): Promise<number[] | undefined> {
  const now = Date.now();
  const cached = layerBitrateCache.get(producer);
  if (cached && now - cached.at < maxAgeMs) return cached.bitrates;
  const bitrates = readLayerBitrates(producer).catch(() => undefined);
  layerBitrateCache.set(producer, { at: now, bitrates });
  return bitrates;
}

async function readLayerBitrates(producer: types.Producer): Promise<number[] | undefined> {
  const stats = await producer.getStats();
  const encodings = producer.rtpParameters.encodings ?? [];
  const bitrates = encodings.map((encoding) => {
    const layer = stats.find(
      (entry) =>
        (encoding.ssrc !== undefined && entry.ssrc === encoding.ssrc) ||
        (encoding.rid !== undefined && entry.rid === encoding.rid),
    );
    return layer?.bitrate;
  });
  // A layer not sending now has no rate to compare with: no measured ladder this interval.
  return bitrates.every((bitrate) => bitrate !== undefined && bitrate > 0)
    ? (bitrates as number[])
    : undefined;
}

/**
 * Simulcast layers of a consumer as adaptation levels: the level caps mediasoup's choice.
 *
 * A step down pauses the consumer around the change. Pausing empties its retransmission buffer:
 * a viewer whose link drops what does not fit keeps asking (NACK) for the lost packets of the
 * level above, up to ten times each, and serving those retransmissions would fill the narrow
 * link again and keep the lower level's key frame from getting through (seen: the picture
 * frozen 1–3 s after the switch). Resuming asks for a key frame of the new level, as the layer
 * change does anyway. A consumer paused for another reason (before DTLS is up) is left so.
 */
export function simulcastTarget(consumer: types.Consumer, layers: number): AdaptationTarget {
  return {
    levels: layers,
    async apply(level, { down }) {
      if (!down || consumer.paused) return consumer.setPreferredLayers({ spatialLayer: level });
      await consumer.pause();
      try {
        await consumer.setPreferredLayers({ spatialLayer: level });
      } finally {
        await consumer.resume();
      }
    },
  };
}
