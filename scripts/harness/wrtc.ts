import { createRequire } from 'node:module';

/**
 * @roamhq/wrtc: real libwebrtc (the engine inside Chrome) as a Node addon, loaded once per
 * process. Its `nonstandard` sources and sinks let tests push raw I420 frames into an encoder
 * and read decoded frames out of a decoder.
 */
// biome-ignore lint/suspicious/noExplicitAny: the addon ships no types
export type Wrtc = any;

const require = createRequire(import.meta.url);
export const wrtc: Wrtc = require('@roamhq/wrtc');
