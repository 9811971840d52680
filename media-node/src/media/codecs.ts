import type { types } from 'mediasoup';

/**
 * The codecs every router of this node speaks. Publishers may send any of them; the H.264
 * entries cover the profiles browsers and OBS actually offer (constrained baseline, main, high).
 */
export const ROUTER_MEDIA_CODECS: types.RouterRtpCodecCapability[] = [
  { kind: 'audio', mimeType: 'audio/opus', clockRate: 48000, channels: 2 },
  { kind: 'video', mimeType: 'video/VP8', clockRate: 90000 },
  {
    kind: 'video',
    mimeType: 'video/H264',
    clockRate: 90000,
    parameters: { 'packetization-mode': 1, 'profile-level-id': '42e01f', 'level-asymmetry-allowed': 1 },
  },
  {
    kind: 'video',
    mimeType: 'video/H264',
    clockRate: 90000,
    parameters: { 'packetization-mode': 1, 'profile-level-id': '4d001f', 'level-asymmetry-allowed': 1 },
  },
  {
    kind: 'video',
    mimeType: 'video/H264',
    clockRate: 90000,
    parameters: { 'packetization-mode': 1, 'profile-level-id': '64001f', 'level-asymmetry-allowed': 1 },
  },
];

/** Human-readable list for error messages ("no supported codec; supported: …"). */
export const SUPPORTED_CODECS_TEXT = 'audio Opus; video VP8 or H.264 (packetization-mode=1)';
