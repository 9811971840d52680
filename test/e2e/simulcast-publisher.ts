import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { rename } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import type { Page } from 'playwright-core';

/**
 * A 1280×720, 30 fps video of moving test pattern under heavy noise, for Chromium's fake camera
 * (`launchChromium({ fakeVideoFile })`): hard to compress, so each simulcast layer really sends
 * up to its maxBitrate (a flat picture would fit any link and prove nothing), at a steady frame
 * rate. (A canvas source does neither: headless Chromium paints it at 2–6 frames a second.)
 * Made once with FFmpeg and kept in the temporary directory.
 */
export async function noiseVideoFile(): Promise<string> {
  const file = join(tmpdir(), 'rtccdn-noise-1280x720-30.mjpeg');
  if (existsSync(file)) return file;
  const partial = `${file}.${process.pid}.partial`;
  await promisify(execFile)(process.env.FFMPEG_PATH ?? 'ffmpeg', [
    ...['-v', 'error', '-y', '-f', 'lavfi', '-i', 'testsrc2=size=1280x720:rate=30'],
    ...['-vf', 'noise=alls=25:allf=t+u', '-t', '4', '-q:v', '4', '-f', 'mjpeg', partial],
  ]);
  await rename(partial, file);
  return file;
}

/**
 * Publishes the fake camera at 1280×720, 30 fps from Chromium over WHIP as three simulcast layers
 * (rids q ÷4, h ÷2, f, lowest first — libwebrtc only sends all three from 960×540 up). Launch
 * Chromium with `fakeVideoFile: await noiseVideoFile()`. The page must be on the node's origin
 * (the demo page) so the WHIP POST is same-origin. Returns the WHIP status; the peer connection
 * stays open in the page (`window.simulcastPublisher`).
 */
export async function publishSimulcast(page: Page, whipUrl: string, key?: string): Promise<number> {
  return page.evaluate(
    async ({ whipUrl, key }) => {
      const camera = await navigator.mediaDevices.getUserMedia({
        video: { width: 1280, height: 720, frameRate: 30 },
      });
      const track = camera.getVideoTracks()[0]!;
      const pc = new RTCPeerConnection();
      pc.addTransceiver(track, {
        direction: 'sendonly',
        sendEncodings: [
          { rid: 'q', scaleResolutionDownBy: 4, maxBitrate: 150_000 },
          { rid: 'h', scaleResolutionDownBy: 2, maxBitrate: 500_000 },
          { rid: 'f', maxBitrate: 1_500_000 },
        ],
      });
      (window as unknown as { simulcastPublisher: RTCPeerConnection }).simulcastPublisher = pc;
      await pc.setLocalDescription(await pc.createOffer());
      await new Promise<void>((resolve) => {
        if (pc.iceGatheringState === 'complete') return resolve();
        pc.addEventListener('icegatheringstatechange', () => {
          if (pc.iceGatheringState === 'complete') resolve();
        });
        setTimeout(resolve, 2000);
      });
      const response = await fetch(whipUrl, {
        method: 'POST',
        headers: { 'Content-Type': 'application/sdp', ...(key ? { Authorization: `Bearer ${key}` } : {}) },
        body: pc.localDescription!.sdp,
      });
      if (response.status === 201)
        await pc.setRemoteDescription({ type: 'answer', sdp: await response.text() });
      return response.status;
    },
    { whipUrl, key },
  );
}

/** Simulcast layers the publisher is sending now (outbound-rtp with bytes flowing), by rid. */
export async function sentLayers(page: Page): Promise<string[]> {
  return (await sentBitrates(page))
    .filter(([, bitrate]) => bitrate > 0)
    .map(([rid]) => rid)
    .sort();
}

/** Bit/s the publisher sends per simulcast layer (rid) over half a second, lowest layer first. */
export async function sentBitrates(page: Page): Promise<[string, number][]> {
  return page.evaluate(async () => {
    const pc = (window as unknown as { simulcastPublisher: RTCPeerConnection }).simulcastPublisher;
    const first = await pc.getStats();
    await new Promise((resolve) => setTimeout(resolve, 500));
    const second = await pc.getStats();
    const sent: [string, number][] = [];
    second.forEach((report) => {
      if (report.type !== 'outbound-rtp' || report.kind !== 'video') return;
      const before = first.get(report.id) as { bytesSent?: number } | undefined;
      sent.push([String(report.rid), (((report.bytesSent ?? 0) - (before?.bytesSent ?? 0)) * 8) / 0.5]);
    });
    return sent.sort(([, a], [, b]) => a - b);
  });
}

/** Frames the publisher has sent so far on the simulcast layer `rid` (its outbound-rtp framesSent). */
export async function framesSent(page: Page, rid: string): Promise<number> {
  return page.evaluate(async (rid) => {
    const pc = (window as unknown as { simulcastPublisher: RTCPeerConnection }).simulcastPublisher;
    let frames = 0;
    (await pc.getStats()).forEach((report) => {
      if (report.type === 'outbound-rtp' && report.kind === 'video' && report.rid === rid)
        frames = (report as { framesSent?: number }).framesSent ?? 0;
    });
    return frames;
  }, rid);
}
