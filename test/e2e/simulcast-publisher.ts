import type { Page } from 'playwright-core';

/**
 * Publishes a 1280×720 canvas of moving noise from Chromium over WHIP as three simulcast layers
 * (rids q ÷4, h ÷2, f, lowest first — libwebrtc only sends all three from 960×540 up). The page
 * must be on the node's origin (the demo page) so the WHIP POST is same-origin. Returns the
 * WHIP status; the peer connection stays open in the page (`window.simulcastPublisher`).
 */
export async function publishSimulcast(page: Page, whipUrl: string, key?: string): Promise<number> {
  return page.evaluate(
    async ({ whipUrl, key }) => {
      const canvas = document.createElement('canvas');
      canvas.width = 1280;
      canvas.height = 720;
      const context = canvas.getContext('2d')!;
      context.imageSmoothingEnabled = false;
      // Random 20×20-pixel blocks, new every frame: hard to compress, so each layer really sends
      // up to its maxBitrate (a flat picture would fit any link and prove nothing).
      const noise = document.createElement('canvas');
      noise.width = 64;
      noise.height = 36;
      const noiseContext = noise.getContext('2d')!;
      const pixels = noiseContext.createImageData(64, 36);
      let tick = 0;
      setInterval(() => {
        tick++;
        for (let index = 0; index < pixels.data.length; index += 4) {
          const value = Math.random() * 255;
          pixels.data[index] = value;
          pixels.data[index + 1] = (value * 7 + tick) % 255;
          pixels.data[index + 2] = 255 - value;
          pixels.data[index + 3] = 255;
        }
        noiseContext.putImageData(pixels, 0, 0);
        context.drawImage(noise, 0, 0, 1280, 720);
      }, 50);
      const track = canvas.captureStream(20).getVideoTracks()[0]!;
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
