import { z } from 'zod';
import { dnsLabel } from './names.js';

/**
 * A rendition profile, as media nodes read it from PROFILES (JSON) and as the CDN resource
 * declares it: declared once, so that the operator never accepts a profile the media nodes
 * refuse at start. A rendition is named `{stream}~{profile}` (e.g. `match~360p`).
 */
export const PROFILE_NAME_MAX_LENGTH = 32;
export const CODECS = ['VP8', 'H264'] as const;
export type Codec = (typeof CODECS)[number];

export const ProfileSchema = z.object({
  name: dnsLabel(
    'profile name must be a DNS label of at most 32 characters',
    PROFILE_NAME_MAX_LENGTH,
  ).describe('Profile name, a DNS label of at most 32 characters (e.g. 720p); part of the rendition name.'),
  width: z
    .int()
    .min(16)
    .max(7680)
    .multipleOf(2, 'width must be even')
    .describe('Width in pixels (even, 16 to 7680).'),
  height: z
    .int()
    .min(16)
    .max(4320)
    .multipleOf(2, 'height must be even')
    .describe('Height in pixels (even, 16 to 4320).'),
  fps: z.int().min(1).max(120).default(30).describe('Frame rate, 1 to 120.'),
  codec: z.enum(CODECS).default('VP8').describe('Video codec: VP8 or H264.'),
  bitrate: z.int().min(50_000).max(100_000_000).describe('Target video bitrate in bits per second.'),
});
export type Profile = z.infer<typeof ProfileSchema>;

/** Most profiles a CDN may declare. */
export const MAX_PROFILES = 16;
