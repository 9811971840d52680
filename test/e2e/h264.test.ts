/**
 * H.264 end to end with real media: Chromium publishes H.264 only (WHIP), the node forwards it,
 * Chromium plays it (WHEP) and decodes frames. (The libwebrtc package the other tests use has no
 * H.264 codec; Chromium has both an encoder and a decoder.)
 */
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import type { Page } from 'playwright-core';
import { type RunningNode, startNode } from '../../scripts/harness/node.js';
import { type LaunchedChromium, launchChromium } from './chromium.js';

interface Played {
  answerStatus: { whip: number; whep: number };
  publishedCodec: string | undefined;
  playedCodec: string | undefined;
  framesDecoded: number;
  width: number;
}

describe('H.264 publish → play (Chromium, real media)', () => {
  let running: RunningNode;
  let chromium: LaunchedChromium;
  let page: Page;

  beforeAll(async () => {
    running = await startNode({ DEMO_PAGE: 'true' });
    chromium = await launchChromium();
    page = await chromium.context.newPage();
    await page.goto(`${running.baseUrl}/`);
  }, 60_000);
  afterAll(async () => {
    await chromium?.close();
    await running?.close();
  }, 60_000);

  it('publishes and plays H.264 only, with frames decoded at the viewer', async () => {
    const played = (await page.evaluate(async (base) => {
      const onlyH264 = (kind: 'video') =>
        (RTCRtpSender.getCapabilities(kind)?.codecs ?? []).filter((codec) =>
          /^video\/(h264|rtx)$/i.test(codec.mimeType),
        );
      const gathered = (pc: RTCPeerConnection) =>
        new Promise<void>((resolve) => {
          if (pc.iceGatheringState === 'complete') return resolve();
          pc.addEventListener('icegatheringstatechange', () => {
            if (pc.iceGatheringState === 'complete') resolve();
          });
          setTimeout(resolve, 2000);
        });
      const exchange = async (pc: RTCPeerConnection, url: string) => {
        await pc.setLocalDescription(await pc.createOffer());
        await gathered(pc);
        const response = await fetch(url, {
          method: 'POST',
          headers: { 'Content-Type': 'application/sdp' },
          body: pc.localDescription!.sdp,
        });
        if (response.status === 201)
          await pc.setRemoteDescription({ type: 'answer', sdp: await response.text() });
        return response.status;
      };
      const codecOf = async (pc: RTCPeerConnection, type: 'outbound-rtp' | 'inbound-rtp') => {
        const stats = await pc.getStats();
        let codecId: string | undefined;
        stats.forEach((report) => {
          if (report.type === type && report.kind === 'video') codecId = report.codecId;
        });
        return codecId
          ? (stats as unknown as Map<string, { mimeType?: string }>).get(codecId)?.mimeType
          : undefined;
      };

      // A moving picture from a canvas.
      const canvas = document.createElement('canvas');
      canvas.width = 320;
      canvas.height = 240;
      const context = canvas.getContext('2d')!;
      let tick = 0;
      const draw = setInterval(() => {
        tick += 7;
        context.fillStyle = `hsl(${tick % 360}, 80%, 50%)`;
        context.fillRect(0, 0, 320, 240);
        context.fillStyle = '#fff';
        context.fillText(String(tick), 20 + (tick % 280), 120);
      }, 33);
      const track = canvas.captureStream(30).getVideoTracks()[0]!;

      const publisher = new RTCPeerConnection();
      publisher.addTransceiver(track, { direction: 'sendonly' }).setCodecPreferences(onlyH264('video'));
      const whip = await exchange(publisher, `${base}/whip/h264`);

      const viewer = new RTCPeerConnection();
      viewer.addTransceiver('video', { direction: 'recvonly' }).setCodecPreferences(onlyH264('video'));
      const video = document.createElement('video');
      video.muted = true;
      video.autoplay = true;
      document.body.append(video);
      viewer.ontrack = (event) => {
        video.srcObject = new MediaStream([event.track]);
      };
      const whep = await exchange(viewer, `${base}/whep/h264`);

      let framesDecoded = 0;
      const deadline = Date.now() + 20_000;
      while (Date.now() < deadline && framesDecoded < 30) {
        await new Promise((resolve) => setTimeout(resolve, 250));
        const stats = await viewer.getStats();
        stats.forEach((report) => {
          if (report.type === 'inbound-rtp' && report.kind === 'video')
            framesDecoded = report.framesDecoded ?? 0;
        });
      }
      const result = {
        answerStatus: { whip, whep },
        publishedCodec: await codecOf(publisher, 'outbound-rtp'),
        playedCodec: await codecOf(viewer, 'inbound-rtp'),
        framesDecoded,
        width: video.videoWidth,
      };
      clearInterval(draw);
      publisher.close();
      viewer.close();
      return result;
    }, running.baseUrl)) as Played;

    expect(played.answerStatus).toEqual({ whip: 201, whep: 201 });
    expect(played.publishedCodec).toBe('video/H264');
    expect(played.playedCodec).toBe('video/H264');
    expect(played.framesDecoded).toBeGreaterThanOrEqual(30);
    expect(played.width).toBe(320);
  }, 60_000);
});
