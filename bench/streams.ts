import { setTimeout as sleep } from 'node:timers/promises';
import { TestCluster } from '../scripts/harness/cluster.js';
import { spawnNode } from '../scripts/harness/node-process.js';
import { startRedisServer } from '../scripts/harness/redis.js';
import { CpuWindow, loadavg, nodePids, publish, rssMiB, viewers } from './load/rtcload.js';

/**
 * Many streams, memory first:
 *  (a) one standalone node (one worker): S streams published at once (rtcload publish -count),
 *      then V viewers per stream: resident memory of the Node.js process and of the worker,
 *      per stream and per viewer, and the CPU it all takes;
 *  (b) Redis + an origin + three edges of one region: R streams on the origin, one viewer per
 *      stream on each edge, so that each edge relays every stream: memory per relay on each node.
 * Video only (VP8, 640x360@30 at a low constant bitrate) so that the machine carries the packet
 * rate; memory does not depend on the bitrate.
 */

export interface StreamsResult {
  settings: {
    streams: number;
    viewersPerStream: number;
    relayedStreams: number;
    kbps: number;
    audio: boolean;
  };
  node: {
    loadavg: number[];
    rssMiB: Record<'idle' | 'streams' | 'viewers', { node: number; worker: number }>;
    perStreamKiB: { node: number; worker: number; total: number };
    perViewerKiB: { node: number; worker: number; total: number };
    connectedViewers: number;
    cores: Record<string, number>;
    lossPctOverall: number;
    freezes: number;
  };
  relays: {
    loadavg: number[];
    perNode: { id: string; relaysIn: number; relaysOut: number; deltaMiB: number; perRelayKiB: number }[];
    connectedViewers: number;
  };
}

const kib = (mib: number, n: number) => Math.round(((mib * 1024) / n) * 10) / 10;

function rss(pids: { node: number; workers: number[] }) {
  return { node: rssMiB(pids.node), worker: pids.workers.reduce((sum, pid) => sum + rssMiB(pid), 0) };
}

export async function runStreamsBench(options: {
  streams: number;
  viewersPerStream: number;
  relayedStreams: number;
}): Promise<StreamsResult> {
  const kbps = 250;
  const settings = { ...options, kbps, audio: false };

  // (a) one node
  const node = await spawnNode({
    RTC_LISTEN_IP: '127.0.0.1',
    RTC_PORT: '47040',
    WORKERS: '1',
    PORT: '18093',
  });
  let nodeResult: StreamsResult['node'];
  try {
    const pids = nodePids(node.child.pid!);
    await sleep(2000);
    const idle = rss(pids);
    const publisher = await publish({
      url: node.baseUrl,
      stream: 'many',
      count: options.streams,
      kbps,
      audio: false,
    });
    try {
      await sleep(5000);
      const withStreams = rss(pids);
      const crowd = viewers({
        url: node.baseUrl,
        stream: 'many',
        'stream-count': options.streams,
        steps: options.streams * options.viewersPerStream,
        audio: false,
        keepalive: true,
        settle: '5s',
        hold: '10s',
      });
      await crowd.next('steady');
      const window = new CpuWindow({ node: pids.node, worker: pids.workers[0]!, loadgen: crowd.child.pid! });
      const step = await crowd.next('step');
      const cores = window.cores();
      const withViewers = rss(pids);
      await crowd.next('done');
      await crowd.stop();
      const n = Number(step.connected);
      const per = (
        from: { node: number; worker: number },
        to: { node: number; worker: number },
        count: number,
      ) => ({
        node: kib(to.node - from.node, count),
        worker: kib(to.worker - from.worker, count),
        total: kib(to.node - from.node + to.worker - from.worker, count),
      });
      nodeResult = {
        loadavg: loadavg(),
        rssMiB: { idle, streams: withStreams, viewers: withViewers },
        perStreamKiB: per(idle, withStreams, options.streams),
        perViewerKiB: per(withStreams, withViewers, n),
        connectedViewers: n,
        cores,
        lossPctOverall: Number(step.lossPctOverall),
        freezes: Number(step.freezes),
      };
      console.log(
        `  one node: ${options.streams} streams → +${JSON.stringify(nodeResult.perStreamKiB)} KiB per stream; ${n} viewers → +${JSON.stringify(nodeResult.perViewerKiB)} KiB per viewer; cores ${JSON.stringify(cores)}; loss ${nodeResult.lossPctOverall}%; loadavg ${nodeResult.loadavg.join(' ')}`,
      );
    } finally {
      await publisher.stop();
    }
  } finally {
    await node.stop();
  }

  // (b) relays
  const redis = await startRedisServer();
  const cluster = new TestCluster(redis.url, { LOG_LEVEL: 'warn', RELAY_LINGER_MS: '60000' });
  try {
    const ids = ['origin', 'edge-1', 'edge-2', 'edge-3'];
    await cluster.add(
      { id: 'origin', role: 'origin', region: 'bench' },
      { id: 'edge-1', role: 'edge', region: 'bench' },
      { id: 'edge-2', role: 'edge', region: 'bench' },
      { id: 'edge-3', role: 'edge', region: 'bench' },
    );
    const pidsOf = Object.fromEntries(ids.map((id) => [id, nodePids(cluster.node(id).process.child.pid!)]));
    await sleep(2000);
    const before = Object.fromEntries(ids.map((id) => [id, rss(pidsOf[id]!)]));
    const publisher = await publish({
      url: cluster.node('origin').baseUrl,
      stream: 'relay',
      count: options.relayedStreams,
      kbps,
      audio: false,
    });
    try {
      await sleep(3000);
      const afterPublish = rss(pidsOf.origin!);
      const crowd = viewers({
        url: ['edge-1', 'edge-2', 'edge-3'].map((id) => cluster.node(id).baseUrl).join(','),
        stream: 'relay',
        'stream-count': options.relayedStreams,
        // viewer i → edge i % 3, stream i % R: with R not a multiple of 3, every edge gets every stream.
        steps: options.relayedStreams * 3,
        audio: false,
        keepalive: true,
        settle: '5s',
        hold: '3s',
      });
      const step = await crowd.next('step');
      const perViewer = nodeResult.perViewerKiB.total;
      const perNode: StreamsResult['relays']['perNode'] = [];
      for (const id of ids) {
        const dump = await cluster.dump(id);
        const now = rss(pidsOf[id]!);
        const from = id === 'origin' ? afterPublish : before[id]!;
        const delta = now.node + now.worker - from.node - from.worker;
        const relaysIn = dump.relayedStreams.length;
        const relaysOut = dump.relaysOut;
        const viewersHere = id === 'origin' ? 0 : options.relayedStreams;
        const relays = Math.max(1, relaysIn + relaysOut);
        perNode.push({
          id,
          relaysIn,
          relaysOut,
          deltaMiB: Math.round(delta * 10) / 10,
          perRelayKiB: Math.round((delta * 1024 - viewersHere * perViewer) / relays),
        });
      }
      await crowd.next('done');
      await crowd.stop();
      const relayResult = { loadavg: loadavg(), perNode, connectedViewers: Number(step.connected) };
      for (const entry of perNode)
        console.log(
          `  ${entry.id}: relays in ${entry.relaysIn}, out ${entry.relaysOut}, +${entry.deltaMiB} MiB → ${entry.perRelayKiB} KiB per relay (after ${perViewer} KiB per viewer)`,
        );
      return { settings, node: nodeResult, relays: relayResult };
    } finally {
      await publisher.stop();
    }
  } finally {
    await cluster.stopAll();
    await redis.stop();
  }
}
