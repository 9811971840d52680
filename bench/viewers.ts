import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import { spawnNode } from '../scripts/harness/node-process.js';
import {
  CpuWindow,
  describe,
  loadavg,
  nodePids,
  pin,
  pinningPlan,
  publish,
  viewers,
} from './load/rtcload.js';

/**
 * Viewers per worker: one node with one mediasoup worker, one constant-bitrate publisher
 * (640x360@30 VP8 at 1.5 Mbit/s + Opus, rtcload publish), then rtcload viewers in steps. At each
 * step, the CPU of the node's Node.js process and of its worker over a window, minus the
 * publisher-only window, per viewer and per Mbit/s sent. The same run against a bare mediasoup
 * fan-out (bench/load/floor.ts, no rtccdn code) gives the floor; rtccdn/floor is the ratio, per
 * step, of the two servers measured back to back under the same load generator.
 */

const SETPRIV = ['/usr/bin/setpriv', '/bin/setpriv'].find((path) => existsSync(path));
const FLOOR = fileURLToPath(new URL('./load/floor.ts', import.meta.url));

export interface ServerSteps {
  server: 'rtccdn' | 'floor';
  publishOnlyCores: { node: number; worker: number };
  steps: {
    viewers: number;
    connected: number;
    loadavg: number[];
    cores: { node: number; worker: number; loadgen: number };
    egressMbps: number;
    perViewerMillicores: { node: number; worker: number; total: number };
    millicoresPerMbps: number;
    receivedKbps: Record<string, number>;
    lossPctOverall: number;
    /** Datagrams dropped by the kernel at the load generator's own sockets (its fault, not the server's). */
    loadgenSocketDrops: number;
    freezes: number;
    /** POST → first video packet: the publisher's next key frame (one a second). */
    ttfpMs: Record<string, number>;
    /** POST → first packet of any track. */
    ttfpAnyMs: Record<string, number>;
    failures: Record<string, number>;
  }[];
}

export interface ViewersResult {
  settings: {
    steps: number[];
    holdSeconds: number;
    kbps: number;
    codec: string;
    rounds: number;
    /** CPUs the worker, and everything else measured (node, publisher, load generator), ran on. */
    pinning: { worker: number[]; rest: number[] } | 'off';
  };
  /**
   * rtccdn/floor per step: `total` = node + worker cores; `perMbps` = the same per Mbit/s actually
   * delivered (robust to a starved machine delivering less than asked); `worker` = worker alone.
   */
  rounds: {
    rtccdn: ServerSteps;
    floor: ServerSteps;
    ratio: { viewers: number; total: number; perMbps: number; worker: number }[];
  }[];
  /** Per step, the rounds' ratios combined (orderBalanced): the figure to quote with an even number of rounds. */
  balanced: { viewers: number; total: number; perMbps: number }[];
}

async function startFloor(port: number, rtcPort: number) {
  const [file, args] = SETPRIV
    ? [SETPRIV, ['--pdeathsig', 'KILL', '--', process.execPath, '--import', 'tsx', FLOOR]]
    : [process.execPath, ['--import', 'tsx', FLOOR]];
  const child = spawn(file, args, {
    env: { ...process.env, PORT: String(port), RTC_PORT: String(rtcPort) },
    stdio: ['ignore', 'ignore', 'inherit'],
  });
  const baseUrl = `http://127.0.0.1:${port}`;
  for (let i = 0; i < 200; i++) {
    try {
      if ((await fetch(`${baseUrl}/readyz`)).ok) break;
    } catch {
      // not yet
    }
    await sleep(100);
  }
  return {
    baseUrl,
    child,
    async stop() {
      child.kill('SIGTERM');
      await new Promise((resolve) => child.once('exit', resolve));
    },
  };
}

async function measure(
  server: 'rtccdn' | 'floor',
  options: { steps: number[]; holdSeconds: number; kbps: number; rtcPort: number; httpPort: number },
): Promise<ServerSteps> {
  const running =
    server === 'rtccdn'
      ? await spawnNode({
          RTC_LISTEN_IP: '127.0.0.1',
          RTC_PORT: String(options.rtcPort),
          WORKERS: '1',
          PORT: String(options.httpPort),
        }).then((node) => ({ baseUrl: node.baseUrl, child: node.child, stop: () => node.stop() }))
      : await startFloor(options.httpPort, options.rtcPort);
  const pids = nodePids(running.child.pid!);
  if (pids.workers.length !== 1)
    throw new Error(`expected one mediasoup worker, found ${pids.workers.length}`);
  const plan = pinningPlan();
  if (plan) {
    pin(pids.workers[0]!, plan.worker);
    pin(pids.node, plan.rest);
  }
  const publisher = await publish({ url: running.baseUrl, stream: 'bench-viewers', kbps: options.kbps });
  if (plan) pin(publisher.child.pid!, plan.rest);
  try {
    await sleep(3000);
    const idle = new CpuWindow({ node: pids.node, worker: pids.workers[0]! });
    await sleep(options.holdSeconds * 1000);
    const publishOnly = idle.cores();
    const crowd = viewers({
      url: running.baseUrl,
      stream: 'bench-viewers',
      steps: options.steps.join(','),
      hold: `${options.holdSeconds}s`,
      settle: '3s',
      concurrency: 16,
      keepalive: true,
    });
    if (plan) pin(crowd.child.pid!, plan.rest);
    const steps: ServerSteps['steps'] = [];
    try {
      for (const _target of options.steps) {
        await crowd.next('steady');
        const window = new CpuWindow({
          node: pids.node,
          worker: pids.workers[0]!,
          loadgen: crowd.child.pid!,
        });
        const step = await crowd.next('step');
        const cores = window.cores();
        const n = Number(step.connected);
        const egressMbps = Number(step.totalMbps);
        const per = (key: 'node' | 'worker') =>
          Math.round(((cores[key]! - publishOnly[key]!) / n) * 1000 * 100) / 100;
        const total = Math.round((per('node') + per('worker')) * 100) / 100;
        steps.push({
          viewers: Number(step.target),
          connected: n,
          loadavg: loadavg(),
          cores: { node: cores.node!, worker: cores.worker!, loadgen: cores.loadgen! },
          egressMbps,
          perViewerMillicores: { node: per('node'), worker: per('worker'), total },
          millicoresPerMbps:
            Math.round(
              ((cores.node! + cores.worker! - publishOnly.node! - publishOnly.worker!) / egressMbps) *
                1000 *
                100,
            ) / 100,
          receivedKbps: describe(step.kbps as number[]),
          lossPctOverall: Number(step.lossPctOverall),
          loadgenSocketDrops: Number(step.loadgenSocketDrops ?? 0),
          freezes: Number(step.freezes),
          ttfpMs: describe(step.ttfpMs as number[]),
          ttfpAnyMs: describe(step.ttfpAnyMs as number[]),
          failures: step.failures as Record<string, number>,
        });
        const last = steps.at(-1)!;
        console.log(
          `  ${server.padEnd(6)} ${String(last.viewers).padStart(3)} viewers (${n} up): node ${cores.node} + worker ${cores.worker} cores, ${egressMbps} Mbit/s out; per viewer ${total} mcores, ${last.millicoresPerMbps} mcores per Mbit/s; loss ${last.lossPctOverall}% (load generator's own socket drops ${last.loadgenSocketDrops}), freezes ${last.freezes}; load generator ${cores.loadgen} cores; loadavg ${last.loadavg.join(' ')}`,
        );
      }
      await crowd.next('done');
    } finally {
      await crowd.stop();
    }
    return { server, publishOnlyCores: { node: publishOnly.node!, worker: publishOnly.worker! }, steps };
  } finally {
    await publisher.stop();
    await running.stop();
  }
}

export async function runViewersBench(options: {
  steps: number[];
  holdSeconds: number;
  rounds: number;
}): Promise<ViewersResult> {
  const kbps = 1500;
  const rounds: ViewersResult['rounds'] = [];
  for (let round = 0; round < options.rounds; round++) {
    const common = { steps: options.steps, holdSeconds: options.holdSeconds, kbps };
    // Alternate the order between rounds: neither server always gets the quieter minute.
    const order: ('rtccdn' | 'floor')[] = round % 2 === 0 ? ['floor', 'rtccdn'] : ['rtccdn', 'floor'];
    const measured: Partial<Record<'rtccdn' | 'floor', ServerSteps>> = {};
    for (const server of order) {
      measured[server] = await measure(server, {
        ...common,
        rtcPort: server === 'rtccdn' ? 47020 : 47030,
        httpPort: server === 'rtccdn' ? 18091 : 18092,
      });
    }
    const rtccdn = measured.rtccdn!;
    const floor = measured.floor!;
    const ratio = rtccdn.steps.map((step, index) => {
      const base = floor.steps[index]!;
      const of = (a: number, b: number) => Math.round((a / b) * 100) / 100;
      return {
        viewers: step.viewers,
        total: of(step.cores.node + step.cores.worker, base.cores.node + base.cores.worker),
        perMbps: of(
          (step.cores.node + step.cores.worker) / step.egressMbps,
          (base.cores.node + base.cores.worker) / base.egressMbps,
        ),
        worker: of(step.cores.worker, base.cores.worker),
      };
    });
    for (const r of ratio)
      console.log(
        `  round ${round + 1}: ${r.viewers} viewers, rtccdn/floor CPU ×${r.total}, per Mbit/s delivered ×${r.perMbps} (worker alone ×${r.worker})`,
      );
    rounds.push({ rtccdn, floor, ratio });
  }
  const balanced = orderBalanced(rounds);
  for (const r of balanced)
    console.log(
      `  order-balanced (geometric mean of ${rounds.length} rounds): ${r.viewers} viewers, rtccdn/floor CPU ×${r.total}, per Mbit/s delivered ×${r.perMbps}`,
    );
  return {
    settings: {
      steps: options.steps,
      holdSeconds: options.holdSeconds,
      kbps,
      codec: 'VP8 640x360@30 + Opus',
      rounds: options.rounds,
      pinning: pinningPlan() ?? 'off',
    },
    rounds,
    balanced,
  };
}

/**
 * The ratio per step over all rounds, as their geometric mean. The rounds alternate which server
 * goes first because the second one measured in a round costs more (15-25 % in the run of
 * 2026-12-02T00-02-07Z, whichever server it was): only an even number of rounds cancels that.
 */
function orderBalanced(rounds: ViewersResult['rounds']): ViewersResult['balanced'] {
  const first = rounds[0];
  if (!first) return [];
  const mean = (values: number[]) =>
    Math.round(Math.exp(values.reduce((sum, value) => sum + Math.log(value), 0) / values.length) * 100) / 100;
  return first.ratio.map((step, index) => ({
    viewers: step.viewers,
    total: mean(rounds.map((round) => round.ratio[index]!.total)),
    perMbps: mean(rounds.map((round) => round.ratio[index]!.perMbps)),
  }));
}
