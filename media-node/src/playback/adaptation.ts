/**
 * The decision behind automatic bitrate adaptation, as a pure function: given what a viewer's
 * link did over the last interval, which quality level (0 = lowest) it should get next.
 *
 * The signal every WebRTC viewer gives is packet loss in its RTCP receiver reports; a viewer
 * whose offer lets mediasoup run its bandwidth estimator (transport-cc or REMB under mediasoup's
 * header extension ids) also gives an estimate. Down is quick (a link that loses packets freezes
 * the picture), up is cautious: only after a run of clean intervals and a hold time that doubles
 * each time a step up fails at once (that level did not fit), so a link at the edge of a level
 * does not flap between two.
 */

export interface AdaptationPolicy {
  /** Levels there are (simulcast layers or renditions), 0 the lowest. */
  levels: number;
  /** Bit/s each level needs, lowest first, when known (used with a bandwidth estimate). */
  levelBitrates?: readonly number[];
  /** An interval losing this fraction of packets or more steps down at once. */
  severeLoss: number;
  /** This fraction or more, `lossyIntervalsDown` intervals in a row, steps down. */
  lossDown: number;
  lossyIntervalsDown: number;
  /** Intervals losing less than this count as clean; `cleanIntervalsUp` in a row may step up. */
  cleanLoss: number;
  cleanIntervalsUp: number;
  /** After a change, reports still describe the previous level for this long: they are ignored. */
  settleMs: number;
  /** The least time on a level before trying the next one up, and the most it grows to. */
  minUpHoldMs: number;
  maxUpHoldMs: number;
  /** A step down this soon after a step up means the step up failed (the hold doubles). */
  failedUpWindowMs: number;
  /** Share of the bandwidth estimate a level's bitrate may take. */
  estimateHeadroom: number;
}

export const DEFAULT_ADAPTATION_POLICY: Omit<AdaptationPolicy, 'levels'> = {
  severeLoss: 0.2,
  lossDown: 0.05,
  lossyIntervalsDown: 2,
  cleanLoss: 0.02,
  cleanIntervalsUp: 4,
  settleMs: 1500,
  minUpHoldMs: 5000,
  maxUpHoldMs: 60_000,
  failedUpWindowMs: 10_000,
  estimateHeadroom: 0.85,
};

export interface AdaptationState {
  level: number;
  changedAtMs: number;
  lossyIntervals: number;
  cleanIntervals: number;
  upHoldMs: number;
  /** When the last step up happened (undefined: none yet, or it held). */
  lastUpAtMs: number | undefined;
}

/** What the viewer's link did over one interval. */
export interface AdaptationSample {
  nowMs: number;
  /** Fraction of packets lost over the interval: its receiver reports and NACKs (0..1). */
  fractionLost: number;
  /**
   * The part of that loss known to be about this interval: the share of packets sent in it that
   * the viewer asked again for (NACK). Unlike a receiver report, it never describes an earlier level.
   */
  freshLoss?: number | undefined;
  /** mediasoup's bandwidth estimate towards the viewer (bit/s), when it has one. */
  availableBitrate?: number | undefined;
  /** What the viewer received over the interval (bit/s sent × share not lost), when known. */
  deliveredBitrate?: number | undefined;
  /** What each level takes now (bit/s, lowest first), when measured; overrides the policy's. */
  levelBitrates?: readonly number[] | undefined;
}

export function initialAdaptationState(
  level: number,
  nowMs: number,
  policy: AdaptationPolicy,
): AdaptationState {
  return {
    level: clamp(level, policy.levels),
    changedAtMs: nowMs,
    lossyIntervals: 0,
    cleanIntervals: 0,
    upHoldMs: policy.minUpHoldMs,
    lastUpAtMs: undefined,
  };
}

/** The next state after `sample`; its `level` is what the viewer should get now. */
export function decideLevel(
  state: AdaptationState,
  sample: AdaptationSample,
  policy: AdaptationPolicy,
): AdaptationState {
  const { nowMs, fractionLost } = sample;
  if (nowMs - state.changedAtMs < policy.settleMs) {
    // A step up that loses at once did not fit: back down without waiting out the settle time
    // (the picture freezes meanwhile), and hold longer before the next try.
    const failedUp = state.lastUpAtMs === state.changedAtMs && (sample.freshLoss ?? 0) >= policy.severeLoss;
    if (!failedUp) return state;
    return {
      level: Math.max(0, state.level - 1),
      changedAtMs: nowMs,
      lossyIntervals: 0,
      cleanIntervals: 0,
      upHoldMs: Math.min(state.upHoldMs * 2, policy.maxUpHoldMs),
      lastUpAtMs: undefined,
    };
  }
  const bitrates = sample.levelBitrates ?? policy.levelBitrates;
  const fitting = fittingLevel(sample.availableBitrate, bitrates, policy);
  // A lossy link carried about what got through: straight down to the level that fits it,
  // rather than one level per interval while the picture freezes.
  const lossyFit =
    fractionLost >= policy.lossDown ? fittingLevel(sample.deliveredBitrate, bitrates, policy) : undefined;

  const lossyIntervals = fractionLost >= policy.lossDown ? state.lossyIntervals + 1 : 0;
  const cleanIntervals = fractionLost < policy.cleanLoss ? state.cleanIntervals + 1 : 0;
  const tooLossy = fractionLost >= policy.severeLoss || lossyIntervals >= policy.lossyIntervalsDown;
  if (state.level > 0 && (tooLossy || (fitting !== undefined && fitting < state.level))) {
    const failedUp = state.lastUpAtMs !== undefined && nowMs - state.lastUpAtMs < policy.failedUpWindowMs;
    const lower = Math.min(
      state.level - (tooLossy ? 1 : 0),
      fitting ?? state.level,
      tooLossy ? (lossyFit ?? state.level) : state.level,
    );
    return {
      level: Math.max(0, lower),
      changedAtMs: nowMs,
      lossyIntervals: 0,
      cleanIntervals: 0,
      upHoldMs: failedUp ? Math.min(state.upHoldMs * 2, policy.maxUpHoldMs) : state.upHoldMs,
      lastUpAtMs: undefined,
    };
  }

  // A step up that held through its window proves the link: trying again needs no long hold.
  const held = state.lastUpAtMs !== undefined && nowMs - state.lastUpAtMs >= policy.failedUpWindowMs;
  const upHoldMs = held ? policy.minUpHoldMs : state.upHoldMs;
  const lastUpAtMs = held ? undefined : state.lastUpAtMs;
  const mayRise =
    state.level < policy.levels - 1 &&
    cleanIntervals >= policy.cleanIntervalsUp &&
    nowMs - state.changedAtMs >= upHoldMs &&
    (fitting === undefined || fitting > state.level);
  if (mayRise) {
    return {
      level: state.level + 1,
      changedAtMs: nowMs,
      lossyIntervals: 0,
      cleanIntervals: 0,
      upHoldMs,
      lastUpAtMs: nowMs,
    };
  }
  return { ...state, lossyIntervals, cleanIntervals, upHoldMs, lastUpAtMs };
}

/** The highest level whose bitrate fits the estimate (0 if none does); undefined without one. */
function fittingLevel(
  availableBitrate: number | undefined,
  bitrates: readonly number[] | undefined,
  policy: AdaptationPolicy,
): number | undefined {
  if (availableBitrate === undefined || !bitrates || bitrates.length !== policy.levels) return undefined;
  const budget = availableBitrate * policy.estimateHeadroom;
  let level = 0;
  for (let index = 0; index < bitrates.length; index++) if (bitrates[index]! <= budget) level = index;
  return level;
}

function clamp(level: number, levels: number): number {
  return Math.max(0, Math.min(levels - 1, Math.floor(level)));
}
