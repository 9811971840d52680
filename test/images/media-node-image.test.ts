/**
 * The media-node image, run standalone with `docker run` (ROLE=all), serves a stream from a real
 * libwebrtc publisher to a real libwebrtc viewer that decodes the publisher's frames.
 *
 * Networking: `--network host`. The container then listens on the host's loopback and announces
 * 127.0.0.1, so every packet (HTTP, ICE, DTLS, SRTP) stays on loopback. Docker's bridge would put
 * the node on 172.17.0.0/16, an address range this test run did not create (and that a CI
 * machine may route elsewhere); publishing a UDP range through docker-proxy would also NAT media.
 *
 * Needs the image (`npm run images`) and a Docker engine (scripts/docker.sh ensure); run with
 * `npm run test:images`.
 */
import { randomBytes } from 'node:crypto';
import { afterAll, afterEach, beforeAll, describe, expect, it } from '@jest/globals';
import { docker, dockerOk, requireImage } from '../../scripts/harness/docker.js';
import { TestPublisher, TestViewer } from '../../scripts/harness/peers.js';
import { freeTcpPort, portBlock } from '../../scripts/harness/ports.js';

const IMAGE = process.env.RTCCDN_MEDIA_NODE_IMAGE ?? 'rtccdn/media-node:latest';

async function waitForHttp(url: string, container: string, timeoutMs = 30_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    try {
      const response = await fetch(url, { signal: AbortSignal.timeout(1000) });
      if (response.ok) return;
    } catch {
      // not listening yet
    }
    const state = await dockerOk(['inspect', '-f', '{{.State.Status}}', container]);
    if (state !== 'running') {
      const logs = await docker(['logs', '--tail', '30', container]);
      throw new Error(`container ${container} is ${state}:\n${logs.stdout}${logs.stderr}`);
    }
    if (Date.now() > deadline) throw new Error(`${url} did not answer within ${timeoutMs} ms`);
    await new Promise((resolve) => setTimeout(resolve, 200));
  }
}

describe(`${IMAGE} run standalone with docker run`, () => {
  const name = `rtccdn-image-test-${randomBytes(4).toString('hex')}`;
  let baseUrl: string;
  const cleanup: (() => void)[] = [];

  beforeAll(async () => {
    await requireImage(IMAGE);
    const port = await freeTcpPort();
    const rtcPort = portBlock(2);
    await dockerOk([
      'run',
      '-d',
      '--name',
      name,
      '--network',
      'host',
      '-e',
      'ROLE=all',
      '-e',
      'HOST=127.0.0.1',
      '-e',
      `PORT=${port}`,
      '-e',
      'RTC_LISTEN_IP=127.0.0.1',
      '-e',
      'ANNOUNCED_IP=127.0.0.1',
      '-e',
      `RTC_PORT=${rtcPort}`,
      '-e',
      'WORKERS=2',
      '-e',
      'LOG_LEVEL=warn',
      IMAGE,
    ]);
    baseUrl = `http://127.0.0.1:${port}`;
    await waitForHttp(`${baseUrl}/healthz`, name);
  }, 60_000);

  afterEach(() => {
    for (const close of cleanup.splice(0)) close();
  });

  afterAll(async () => {
    await docker(['rm', '-f', name]);
  });

  it('runs Node.js 24 as a non-root user under tini, with the mediasoup worker and FFmpeg', async () => {
    const processes = await dockerOk(['top', name, '-o', 'pid,user,args']);
    const lines = processes.split('\n').slice(1);
    expect(lines.some((line) => /\/usr\/bin\/tini -- node dist\/media-node\/src\/main\.js/.test(line))).toBe(
      true,
    );
    expect(lines.some((line) => /mediasoup-worker/.test(line))).toBe(true);
    // Every process of the container runs as uid 1000 (docker top shows the host's user name for it).
    expect(await dockerOk(['exec', name, 'id', '-u'])).toBe('1000');
    expect(await dockerOk(['exec', name, 'node', '--version'])).toMatch(/^v24\./);
    expect(await dockerOk(['exec', name, 'ffmpeg', '-hide_banner', '-version'])).toMatch(/^ffmpeg version /);
    // Compiled JavaScript only: no TypeScript sources, no tsx.
    const files = await dockerOk([
      'exec',
      name,
      'sh',
      '-c',
      'find /app/dist -name "*.ts" | wc -l; ls /app/node_modules',
    ]);
    const [tsFiles, ...packages] = files.split('\n');
    expect(tsFiles).toBe('0');
    expect(packages).toContain('mediasoup');
    expect(packages).not.toContain('tsx');
    expect(packages).not.toContain('typescript');
  });

  it('plays a WHIP-published stream to a WHEP viewer that decodes the frames', async () => {
    const publisher = new TestPublisher({ audio: true });
    cleanup.push(() => publisher.close());
    const published = await publisher.publish(baseUrl, 'image-test');
    expect(published.status).toBe(201);
    // The node announces the address it was given (ANNOUNCED_IP), nothing else.
    const candidates = published.body.match(/^a=candidate:.*$/gm) ?? [];
    expect(candidates.length).toBeGreaterThan(0);
    for (const candidate of candidates) expect(candidate.split(' ')[4]).toBe('127.0.0.1');

    const viewer = new TestViewer();
    cleanup.push(() => viewer.close());
    const played = await viewer.play(baseUrl, 'image-test');
    expect(played.status).toBe(201);
    await viewer.waitForFrames(15);
    expect(viewer.lastFrameSize).toEqual({ width: 320, height: 240 });
    expect(viewer.audioTracks).toBe(1);
  });

  it('stops on SIGTERM within its shutdown timeout and exits 0 (tini forwards the signal)', async () => {
    await dockerOk(['stop', '--time', '20', name], { timeoutMs: 30_000 });
    expect(await dockerOk(['inspect', '-f', '{{.State.ExitCode}}', name])).toBe('0');
  });
});
