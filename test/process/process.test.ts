import { spawnSync } from 'node:child_process';
import { createServer } from 'node:net';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from '@jest/globals';
import { sleep } from '../../scripts/harness/node.js';
import { spawnNode } from '../../scripts/harness/node-process.js';
import { TestPublisher, TestViewer } from '../../scripts/harness/peers.js';
import { freeTcpPort, freeTcpPorts, portBlock } from '../../scripts/harness/ports.js';

const MAIN = fileURLToPath(new URL('../../media-node/src/main.ts', import.meta.url));

describe('media node process', () => {
  it.each([
    ['RTC_PORT', 'abc'],
    ['WORKERS', '-1'],
    ['LOG_LEVEL', 'verbose'],
  ])('exits 2 with a one-line message naming %s when it is invalid', (variable, value) => {
    const result = spawnSync(process.execPath, ['--import', 'tsx', MAIN], {
      env: { ...process.env, [variable]: value },
      encoding: 'utf8',
      timeout: 20_000,
    });
    expect(result.status).toBe(2);
    const lines = result.stderr.trim().split('\n');
    expect(lines).toHaveLength(1);
    expect(lines[0]).toMatch(new RegExp(`^rtccdn media-node: invalid configuration: ${variable} `));
  });

  it('refuses to start standalone on a shared Redis with an open ACL API (exit 2, one line)', () => {
    const result = spawnSync(process.execPath, ['--import', 'tsx', MAIN], {
      env: {
        ...process.env,
        ROLE: 'all',
        REDIS_URL: 'redis://127.0.0.1:9',
        CLUSTER_SECRET: 'a-cluster-secret-0123456789',
      },
      encoding: 'utf8',
      timeout: 20_000,
    });
    expect(result.status).toBe(2);
    expect(result.stderr.trim().split('\n')).toEqual([
      'rtccdn media-node: invalid configuration: ADMIN_TOKEN is required for ROLE=all with REDIS_URL (the ACL API writes the shared Redis)',
    ]);
  });

  it('on SIGTERM answers not-ready, closes every session with its reason, and exits 0', async () => {
    const node = await spawnNode(
      {
        RTC_LISTEN_IP: '127.0.0.1',
        RTC_PORT: String(portBlock(1)),
        WORKERS: '1',
        PORT: String(await freeTcpPort()),
      },
      undefined,
      { captureLogs: true },
    );
    const publisher = new TestPublisher();
    const viewer = new TestViewer();
    try {
      expect((await publisher.publish(node.baseUrl, 'shutdown')).status).toBe(201);
      expect((await viewer.play(node.baseUrl, 'shutdown')).status).toBe(201);
      await viewer.waitForFrames(5);
      const sessions = [publisher.location, viewer.location].map((location) => location!.split('/').at(-1));
      // Watch readiness from the signal on, until the port closes.
      const readiness: number[] = [];
      let polling = true;
      const poll = (async () => {
        while (polling) {
          try {
            readiness.push(
              (await fetch(`${node.baseUrl}/readyz`, { signal: AbortSignal.timeout(500) })).status,
            );
          } catch {
            break; // the server is gone
          }
          await sleep(5);
        }
      })();
      const exitCode = await node.stop();
      polling = false;
      await poll;
      expect(exitCode).toBe(0);
      // Ready until the signal, then 503 while the node closes its sessions.
      expect(readiness.at(-1)).toBe(503);
      expect(readiness.filter((status) => status !== 200 && status !== 503)).toEqual([]);
      // Each session closed by the shutdown, said so once.
      const closed = node.logs.filter((line) => line.msg === 'session closed');
      expect(closed.map((line) => [line.session, line.reason]).sort()).toEqual(
        sessions.map((session) => [session, 'node-shutdown']).sort(),
      );
      expect(node.logs.map((line) => line.msg)).toEqual(expect.arrayContaining(['shutting down', 'stopped']));
      // The viewer sees the DTLS close (libwebrtc reports it once ICE goes unanswered, ~7 s).
      await viewer.waitForDisconnect(15_000);
    } finally {
      viewer.close();
      publisher.close();
      node.child.kill('SIGKILL');
    }
  }, 40_000);

  it('exits 1 when closing takes longer than SHUTDOWN_TIMEOUT_MS', async () => {
    const node = await spawnNode(
      {
        RTC_LISTEN_IP: '127.0.0.1',
        RTC_PORT: String(portBlock(1)),
        WORKERS: '1',
        PORT: String(await freeTcpPort()),
        // Shorter than the node's own close (it gives DTLS close alerts 100 ms to leave).
        SHUTDOWN_TIMEOUT_MS: '20',
      },
      undefined,
      { captureLogs: true },
    );
    try {
      expect(await node.stop()).toBe(1);
      expect(node.logs.map((line) => line.msg)).toContain('shutdown timed out; exiting');
      expect(node.logs.map((line) => line.msg)).not.toContain('stopped');
    } finally {
      node.child.kill('SIGKILL');
    }
  });

  it.each([
    ['HTTP', 'PORT'],
    ['WebRTC', 'RTC_PORT'],
  ])('exits 1 with one line naming the address when its %s port is taken', async (_label, variable) => {
    const [httpPort, takenPort] = (await freeTcpPorts(2)) as [number, number];
    const squatter = createServer();
    await new Promise<void>((resolve) => squatter.listen(takenPort, '127.0.0.1', resolve));
    try {
      const env: Record<string, string> = {
        RTC_LISTEN_IP: '127.0.0.1',
        RTC_PORT: String(portBlock(1)),
        WORKERS: '1',
        PORT: String(httpPort),
      };
      env[variable] = String(takenPort);
      await expect(spawnNode(env)).rejects.toThrow(
        new RegExp(
          `exited with 1 during start: rtccdn media-node: cannot listen (for WebRTC )?on [\\d.]+:${takenPort}\\b`,
        ),
      );
    } finally {
      squatter.close();
    }
  });
});
