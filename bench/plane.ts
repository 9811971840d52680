import { setTimeout as sleep } from 'node:timers/promises';
import { Redis } from 'ioredis';
import { RedisAclStore } from '../media-node/contract/acl.js';
import { AclCache } from '../media-node/src/acl/AclCache.js';
import { ClusterRegistry } from '../media-node/src/cluster/ClusterRegistry.js';
import { createLogger } from '../media-node/src/logger.js';
import { decideScale, type ScalePolicy } from '../operator/src/controllers/autoscaler/decide.js';
import { ClusterReader } from '../operator/src/redis/ClusterReader.js';
import { startRedisServer } from '../scripts/harness/redis.js';
import { cpuSeconds, describe, loadavg } from './load/rtcload.js';

/**
 * The cluster plane against one Redis: N simulated nodes in this process, each with the media
 * node's own registry (ClusterRegistry: heartbeat, stream and relay leases, stream events) and
 * ACL cache (RedisAclStore subscribed + AclCache with its periodic version check) — the same
 * code and timers as a real node, without media. Measured: Redis commands per second (by
 * command) and Redis CPU in steady state and under churn (ACL writes and streams going up and
 * down), how long an ACL change takes to reach every node, and the operator's autoscaler pass
 * over R regions (its registry snapshot per region + decideScale), as the reconciler runs it.
 */

export interface PlaneResult {
  settings: { nodes: number; origins: number; regions: number; streams: number; relayLeases: number };
  phases: {
    name: string;
    loadavg: number[];
    seconds: number;
    redisOpsPerSecond: number;
    redisCores: number;
    topCommands: Record<string, number>;
    pubsubMessagesPerSecond?: number;
  }[];
  aclPropagationMs: Record<string, number>;
  autoscaler: {
    regions: number;
    snapshotMs: Record<string, number>;
    passMs: Record<string, number>;
    decideMicroseconds: number;
    redisCores: number;
    recordsReadPerPass: number;
  };
}

function redisCommandStats(text: string): Map<string, number> {
  const stats = new Map<string, number>();
  for (const match of text.matchAll(/^cmdstat_([^:]+):calls=(\d+)/gm)) stats.set(match[1]!, Number(match[2]));
  return stats;
}

async function measurePhase(
  admin: Redis,
  redisPid: number,
  name: string,
  seconds: number,
  during?: () => Promise<{ published: number; subscribers: number }>,
): Promise<PlaneResult['phases'][number]> {
  const stats0 = redisCommandStats(await admin.info('commandstats'));
  const cpu0 = cpuSeconds(redisPid);
  const t0 = performance.now();
  const churn = during ? during() : sleep(seconds * 1000).then(() => undefined);
  const churned = await churn;
  const wall = (performance.now() - t0) / 1000;
  const cpu1 = cpuSeconds(redisPid);
  const stats1 = redisCommandStats(await admin.info('commandstats'));
  let total = 0;
  const perCommand: [string, number][] = [];
  for (const [command, calls] of stats1) {
    const delta = calls - (stats0.get(command) ?? 0) - (command === 'info' ? 1 : 0);
    if (delta <= 0) continue;
    total += delta;
    perCommand.push([command, Math.round(delta / wall)]);
  }
  perCommand.sort((a, b) => b[1] - a[1]);
  const phase = {
    name,
    loadavg: loadavg(),
    seconds: Math.round(wall * 10) / 10,
    redisOpsPerSecond: Math.round(total / wall),
    redisCores: Math.round(((cpu1 - cpu0) / wall) * 1000) / 1000,
    topCommands: Object.fromEntries(perCommand.slice(0, 8)),
    ...(churned
      ? { pubsubMessagesPerSecond: Math.round((churned.published * churned.subscribers) / wall) }
      : {}),
  };
  console.log(
    `  ${name}: ${phase.redisOpsPerSecond} Redis commands/s, Redis ${phase.redisCores} cores${phase.pubsubMessagesPerSecond ? `, ${phase.pubsubMessagesPerSecond} pub/sub deliveries/s` : ''}; top ${JSON.stringify(phase.topCommands)}; loadavg ${phase.loadavg.join(' ')}`,
  );
  return phase;
}

export async function runPlaneBench(options: {
  nodes: number;
  regions: number;
  seconds: number;
}): Promise<PlaneResult> {
  const redis = await startRedisServer();
  const logger = createLogger('silent');
  const admin = new Redis(redis.url);
  const origins = Math.max(1, Math.round(options.nodes / 20));
  const streamsPerOrigin = 20;
  const relaysPerEdge = 5;
  const registries: ClusterRegistry[] = [];
  const stores: RedisAclStore[] = [];
  const caches: AclCache[] = [];
  try {
    for (let i = 0; i < options.nodes; i++) {
      const role = i < origins ? 'origin' : 'edge';
      const id = `${role}-${i}`;
      const region = `r${i % options.regions}`;
      const registry = ClusterRegistry.create({
        redisUrl: redis.url,
        self: { id, role, region, internalUrl: `http://127.0.0.1:${10000 + i}` },
        logger,
      });
      registries.push(registry);
      const store = new RedisAclStore({ redisUrl: redis.url, subscribe: true, logger });
      stores.push(store);
      caches.push(new AclCache({ store, logger }));
    }
    await Promise.all(
      registries.map((registry) => new Promise<void>((resolve) => registry.once('ready', resolve))),
    );
    await Promise.all(caches.map((cache) => cache.start()));
    // Origins claim their streams; edges hold relay leases (a region's relay of a stream).
    let streams = 0;
    let relayLeases = 0;
    for (let i = 0; i < options.nodes; i++) {
      const registry = registries[i]!;
      if (i < origins) {
        for (let s = 0; s < streamsPerOrigin; s++) {
          await registry.claimStream({ name: `s${i}-${s}`, kinds: ['audio', 'video'] });
          streams++;
        }
      } else {
        for (let r = 0; r < relaysPerEdge; r++) {
          const result = await registry.claimRelay(
            registry.self.region,
            `s${(i + r) % origins}-${(i * 7 + r) % streamsPerOrigin}`,
          );
          if (result.acquired) relayLeases++;
        }
      }
      registry.setLoad({ viewers: 100 + (i % 400), streams: 0, egressBps: 150_000_000, cpu: 0.3 });
    }
    await sleep(3000);
    const phases: PlaneResult['phases'] = [];
    phases.push(
      await measurePhase(
        admin,
        redis.pid!,
        'steady (heartbeats, leases, ACL version checks)',
        options.seconds,
      ),
    );

    // Churn: 10 ACL writes/s (an ACL API writer) and 5 streams up + down per second.
    const writer = new RedisAclStore({ redisUrl: redis.url, subscribe: false, logger });
    await writer.connected(5000);
    const churn = async () => {
      let published = 0;
      const end = performance.now() + options.seconds * 1000;
      for (let tick = 0; performance.now() < end; tick++) {
        const started = performance.now();
        const origin = registries[tick % origins]!;
        await Promise.all([
          writer.update(`acl-${tick % 50}`, () => [{ id: `k${tick}`, hash: 'a'.repeat(64) }]),
          origin.claimStream({ name: `churn-${tick}`, kinds: ['video'] }),
        ]);
        published += 2; // the ACL change message and stream-up
        if (tick >= 2) {
          await registries[(tick - 2) % origins]!.releaseStream(`churn-${tick - 2}`, 'bench');
          published++;
        }
        await sleep(Math.max(0, 100 - (performance.now() - started)));
      }
      return { published, subscribers: options.nodes * 2 };
    };
    phases.push(
      await measurePhase(
        admin,
        redis.pid!,
        'churn (10 ACL writes/s, 10 streams up and down/s)',
        options.seconds,
        churn,
      ),
    );

    // ACL propagation: from the write returning to every node's cache holding the new version.
    const propagation: number[] = [];
    for (let i = 0; i < 20; i++) {
      const t0 = performance.now();
      await writer.update(`prop-${i}`, () => [{ id: `p${i}`, hash: 'b'.repeat(64) }]);
      const target = (await writer.version()).version;
      while (caches.some((cache) => cache.version < target)) await sleep(1);
      propagation.push(performance.now() - t0);
      await sleep(100);
    }
    console.log(
      `  ACL change → all ${options.nodes} nodes' caches: ${JSON.stringify(describe(propagation))} ms`,
    );
    await writer.close();

    // The operator's autoscaler pass: one registry snapshot per region (as the reconciler does),
    // then decideScale over that region's edges.
    const reader = new ClusterReader(redis.url, 'rtccdn:', logger as never);
    const policy: ScalePolicy = {
      minReplicas: 1,
      maxReplicas: 100,
      targetViewersPerEdge: 500,
      stabilizationMs: 300_000,
      drainGraceMs: 600_000,
    };
    const snapshots: number[] = [];
    const passes: number[] = [];
    let decideNs = 0n;
    let decisions = 0;
    let records = 0;
    const cpu0 = cpuSeconds(redis.pid!);
    const t0 = performance.now();
    for (let pass = 0; pass < 10; pass++) {
      const started = performance.now();
      for (let r = 0; r < options.regions; r++) {
        const s0 = performance.now();
        const snapshot = await reader.snapshot();
        snapshots.push(performance.now() - s0);
        records += snapshot.nodes.length;
        const edges = snapshot.nodes.filter((node) => node.role === 'edge' && node.region === `r${r}`);
        const d0 = process.hrtime.bigint();
        decideScale({
          policy,
          replicas: edges.length,
          viewers: edges.reduce((sum, node) => sum + node.load.viewers, 0),
          podViewers: new Map(edges.map((node, index) => [index, node.load.viewers])),
          state: { lastScaleTime: 0 },
          now: Date.now(),
        });
        decideNs += process.hrtime.bigint() - d0;
        decisions++;
      }
      passes.push(performance.now() - started);
    }
    const wall = (performance.now() - t0) / 1000;
    const autoscaler = {
      regions: options.regions,
      snapshotMs: describe(snapshots),
      passMs: describe(passes),
      decideMicroseconds: Math.round(Number(decideNs / BigInt(decisions)) / 100) / 10,
      redisCores: Math.round(((cpuSeconds(redis.pid!) - cpu0) / wall) * 1000) / 1000,
      recordsReadPerPass: Math.round(records / 10),
    };
    reader.close();
    console.log(
      `  autoscaler pass over ${options.regions} regions: ${JSON.stringify(autoscaler.passMs)} ms (a snapshot of ${options.nodes} node records per region: ${JSON.stringify(autoscaler.snapshotMs)} ms; decideScale ${autoscaler.decideMicroseconds} µs); ${autoscaler.recordsReadPerPass} records read per pass; Redis ${autoscaler.redisCores} cores while passing back to back`,
    );
    return {
      settings: { nodes: options.nodes, origins, regions: options.regions, streams, relayLeases },
      phases,
      aclPropagationMs: describe(propagation),
      autoscaler,
    };
  } finally {
    for (const cache of caches) cache.close();
    await Promise.all(stores.map((store) => store.close()));
    await Promise.all(registries.map((registry) => registry.close()));
    admin.disconnect();
    await redis.stop();
  }
}
