import { readdirSync, readFileSync } from 'node:fs';
import { setTimeout as sleep } from 'node:timers/promises';
import { spawnNode } from '../scripts/harness/node-process.js';
import { TestPublisher, TestViewer } from '../scripts/harness/peers.js';

/**
 * CPU per viewer: one standalone node (one worker, a separate process), one 640×360@30 VP8 +
 * Opus publisher, then N WHEP viewers of that stream. CPU time (user + system, from
 * /proc/<pid>/stat) of the node's Node.js process and of its mediasoup worker process is read
 * over a window with the publisher alone and over a window with N viewers; the difference
 * divided by N is the cost of one viewer. Viewers (libwebrtc, decoding) run in this process and
 * are not counted.
 */

const WIDTH = 640;
const HEIGHT = 360;
const FPS = 30;
const TICKS_PER_SECOND = 100; // USER_HZ on Linux (sysconf(_SC_CLK_TCK)); /proc reports in these.

export interface FanoutResult {
  viewers: number;
  /** Cores used with the publisher alone / with N viewers, per process. */
  publishOnlyCores: { node: number; worker: number };
  withViewersCores: { node: number; worker: number };
  /** (with viewers - publish only) / N, in millicores. */
  perViewerMillicores: { node: number; worker: number; total: number };
  settings: { width: number; height: number; fps: number; seconds: number };
}

/** utime + stime of a process, in clock ticks. */
function cpuTicks(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  // Fields after the parenthesised command name (which may contain spaces).
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return Number(fields[11]) + Number(fields[12]); // fields 14 and 15 of proc(5)
}

function childPids(pid: number): number[] {
  const children: number[] = [];
  for (const task of readdirSync(`/proc/${pid}/task`)) {
    const text = readFileSync(`/proc/${pid}/task/${task}/children`, 'utf8').trim();
    if (text) children.push(...text.split(' ').map(Number));
  }
  return children;
}

async function coresOver(pids: { node: number; worker: number }, seconds: number) {
  const t0 = process.hrtime.bigint();
  const before = { node: cpuTicks(pids.node), worker: cpuTicks(pids.worker) };
  await sleep(seconds * 1000);
  const after = { node: cpuTicks(pids.node), worker: cpuTicks(pids.worker) };
  const wall = Number(process.hrtime.bigint() - t0) / 1e9;
  const cores = (ticks: number) => Math.round((ticks / TICKS_PER_SECOND / wall) * 1000) / 1000;
  return { node: cores(after.node - before.node), worker: cores(after.worker - before.worker) };
}

export async function runFanoutBench(options: {
  seconds: number;
  viewers: number;
  rtcPort: number;
}): Promise<FanoutResult> {
  const node = await spawnNode({
    RTC_LISTEN_IP: '127.0.0.1',
    RTC_PORT: String(options.rtcPort),
    WORKERS: '1',
    PORT: '18090',
  });
  const publisher = new TestPublisher({ width: WIDTH, height: HEIGHT, fps: FPS, audio: true });
  const viewers: TestViewer[] = [];
  try {
    const nodePid = node.child.pid!;
    const workers = childPids(nodePid).filter((pid) =>
      readFileSync(`/proc/${pid}/cmdline`, 'utf8').includes('mediasoup-worker'),
    );
    if (workers.length !== 1)
      throw new Error(`expected one mediasoup worker process, found ${workers.length}`);
    const pids = { node: nodePid, worker: workers[0]! };

    const published = await publisher.publish(node.baseUrl, 'bench-fanout');
    if (published.status !== 201) throw new Error(`WHIP failed: ${published.status} ${published.body}`);
    await sleep(3000); // encoder ramp-up
    const publishOnly = await coresOver(pids, options.seconds);

    for (let i = 0; i < options.viewers; i++) {
      const viewer = new TestViewer();
      viewers.push(viewer);
      const played = await viewer.play(node.baseUrl, 'bench-fanout');
      if (played.status !== 201) throw new Error(`WHEP failed: ${played.status} ${played.body}`);
    }
    await Promise.all(viewers.map((viewer) => viewer.waitForFrames(30, 30_000)));
    await sleep(2000); // bandwidth estimation settles
    const withViewers = await coresOver(pids, options.seconds);
    const perViewer = (key: 'node' | 'worker') =>
      Math.round(((withViewers[key] - publishOnly[key]) / options.viewers) * 1000 * 10) / 10;
    return {
      viewers: options.viewers,
      publishOnlyCores: publishOnly,
      withViewersCores: withViewers,
      perViewerMillicores: {
        node: perViewer('node'),
        worker: perViewer('worker'),
        total: Math.round((perViewer('node') + perViewer('worker')) * 10) / 10,
      },
      settings: { width: WIDTH, height: HEIGHT, fps: FPS, seconds: options.seconds },
    };
  } finally {
    for (const viewer of viewers) viewer.close();
    publisher.close();
    await node.stop();
  }
}
