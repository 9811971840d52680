/**
 * A real, throwaway Sentinel-managed Redis for tests: a primary and two replicas (Debian's
 * redis-server) watched by three redis-sentinel processes (quorum 2), all on free loopback ports
 * in a temp dir, no persistence, killed with the test process. `killPrimary()` SIGKILLs the
 * current primary; the Sentinels then promote a replica (down-after 1 s), and `restartKilled()`
 * brings the old one back, which the Sentinels turn into a replica of the new primary.
 */
import { existsSync } from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Redis } from 'ioredis';
import { freeTcpPort } from './ports.js';
import { launch, PortInUseError, type RunningServer } from './redis.js';

const REDIS_SENTINEL = process.env.RTCCDN_REDIS_SENTINEL ?? '/usr/bin/redis-sentinel';
export const SENTINEL_MASTER_NAME = 'rtccdn-test';
/** The primary is judged down after this long without an answer (Sentinel's down-after-milliseconds). */
export const DOWN_AFTER_MS = 1000;
/** A replica's first sync starts at once (Redis 7 waits 5 s for more replicas by default). */
const DATA_NODE_ARGS = ['--repl-diskless-sync-delay', '0'];

export interface SentinelRedis {
  /** redis+sentinel://127.0.0.1:<s1>,127.0.0.1:<s2>,127.0.0.1:<s3>/rtccdn-test */
  readonly url: string;
  /** Port of the primary as the Sentinels see it now. */
  primaryPort(): Promise<number>;
  /** redis://127.0.0.1:<port> of every data node now running (primary and replicas). */
  dataUrls(): string[];
  /** SIGKILLs the current primary; resolves with its port. */
  killPrimary(): Promise<number>;
  /** Until the Sentinels name a primary other than `oldPort` (and it answers as a primary). */
  waitForFailover(oldPort: number, timeoutMs?: number): Promise<number>;
  /** Starts the data node killed last again, empty, on its port (it comes back as a replica). */
  restartKilled(): Promise<void>;
  /** SIGSTOPs / SIGCONTs a data node (a replica that falls behind). */
  pause(port: number): void;
  resume(port: number): void;
  stop(): Promise<void>;
}

export async function startSentinelRedis(): Promise<SentinelRedis> {
  if (!existsSync(REDIS_SENTINEL)) {
    throw new Error(
      `${REDIS_SENTINEL} not found: run scripts/setup.sh --test (installs Debian's redis-sentinel)`,
    );
  }
  const dir = await mkdtemp(join(tmpdir(), 'rtccdn-sentinel-'));
  const data = new Map<number, RunningServer>();
  const sentinels = new Map<number, RunningServer>();
  let killed: number | undefined;
  const start = async (what: (port: number) => Promise<RunningServer>): Promise<[number, RunningServer]> => {
    for (let attempt = 1; ; attempt++) {
      const port = await freeTcpPort();
      try {
        return [port, await what(port)];
      } catch (error) {
        if (!(error instanceof PortInUseError) || attempt >= 5) throw error;
      }
    }
  };
  const stopAll = async () => {
    await Promise.all([...sentinels.values(), ...data.values()].map((server) => server.terminate('SIGKILL')));
    sentinels.clear();
    data.clear();
  };
  const killOnExit = (): void => {
    for (const server of [...sentinels.values(), ...data.values()]) server.child.kill('SIGKILL');
  };
  process.once('exit', killOnExit);
  try {
    const [primary, primaryServer] = await start((port) => launch(dir, port, DATA_NODE_ARGS));
    data.set(primary, primaryServer);
    for (let i = 0; i < 2; i++) {
      const [port, server] = await start((replicaPort) =>
        launch(dir, replicaPort, [...DATA_NODE_ARGS, '--replicaof', '127.0.0.1', String(primary)]),
      );
      data.set(port, server);
    }
    for (let i = 0; i < 3; i++) {
      const [port, server] = await start(async (sentinelPort) => {
        const config = join(dir, `sentinel-${sentinelPort}.conf`);
        await writeFile(
          config,
          [
            `sentinel monitor ${SENTINEL_MASTER_NAME} 127.0.0.1 ${primary} 2`,
            `sentinel down-after-milliseconds ${SENTINEL_MASTER_NAME} ${DOWN_AFTER_MS}`,
            `sentinel failover-timeout ${SENTINEL_MASTER_NAME} 5000`,
            `sentinel parallel-syncs ${SENTINEL_MASTER_NAME} 2`,
            '',
          ].join('\n'),
        );
        return launch(dir, sentinelPort, [config, '--sentinel'], REDIS_SENTINEL);
      });
      sentinels.set(port, server);
    }
  } catch (error) {
    await stopAll();
    await rm(dir, { recursive: true, force: true });
    throw error;
  }
  const sentinelPorts = [...sentinels.keys()];
  const askSentinels = async <T>(ask: (sentinel: Redis) => Promise<T>): Promise<T> => {
    let lastError: unknown;
    for (const port of sentinelPorts) {
      const sentinel = new Redis({ port, host: '127.0.0.1', lazyConnect: true, maxRetriesPerRequest: 0 });
      try {
        await sentinel.connect();
        return await ask(sentinel);
      } catch (error) {
        lastError = error;
      } finally {
        sentinel.disconnect();
      }
    }
    throw lastError;
  };
  const masterPort = () =>
    askSentinels(async (sentinel) => {
      const [, port] = (await sentinel.call('SENTINEL', 'get-master-addr-by-name', SENTINEL_MASTER_NAME)) as [
        string,
        string,
      ];
      return Number(port);
    });
  // Ready once both replicas are in sync and every Sentinel knows them and the other Sentinels
  // (a failover needs them).
  const deadline = Date.now() + 20_000;
  for (;;) {
    const primaryNode = new Redis({ port: [...data.keys()][0], host: '127.0.0.1', maxRetriesPerRequest: 0 });
    const replication = await primaryNode.info('replication').catch(() => '');
    primaryNode.disconnect();
    const online = (replication.match(/^slave\d+:.*state=online/gm) ?? []).length;
    const known = await Promise.all(
      sentinelPorts.map(async (port) => {
        const sentinel = new Redis({ port, host: '127.0.0.1', maxRetriesPerRequest: 0 });
        try {
          const replicas = (await sentinel.call('SENTINEL', 'replicas', SENTINEL_MASTER_NAME)) as unknown[];
          const peers = (await sentinel.call('SENTINEL', 'sentinels', SENTINEL_MASTER_NAME)) as unknown[];
          return replicas.length === 2 && peers.length === 2;
        } catch {
          return false;
        } finally {
          sentinel.disconnect();
        }
      }),
    );
    if (online === 2 && known.every(Boolean)) break;
    if (Date.now() > deadline) {
      await stopAll();
      throw new Error('the Sentinels did not discover the replicas and each other within 20 s');
    }
    await new Promise((resolve) => setTimeout(resolve, 100));
  }

  return {
    url: `redis+sentinel://${sentinelPorts.map((port) => `127.0.0.1:${port}`).join(',')}/${SENTINEL_MASTER_NAME}`,
    primaryPort: masterPort,
    dataUrls: () => [...data.keys()].map((port) => `redis://127.0.0.1:${port}`),
    async killPrimary() {
      const port = await masterPort();
      await data.get(port)?.terminate('SIGKILL');
      data.delete(port);
      killed = port;
      return port;
    },
    async waitForFailover(oldPort, timeoutMs = 20_000) {
      const until = Date.now() + timeoutMs;
      for (;;) {
        const port = await masterPort().catch(() => oldPort);
        if (port !== oldPort) {
          const node = new Redis({ port, host: '127.0.0.1', maxRetriesPerRequest: 0 });
          try {
            const [role] = (await node.call('ROLE')) as [string];
            if (role === 'master') return port;
          } catch {
            // not answering yet
          } finally {
            node.disconnect();
          }
        }
        if (Date.now() > until) throw new Error(`no failover from port ${oldPort} within ${timeoutMs} ms`);
        await new Promise((resolve) => setTimeout(resolve, 50));
      }
    },
    async restartKilled() {
      if (killed === undefined) return;
      // Started as a primary, as a crashed one restarts with its old config; the Sentinels
      // see a stale primary and turn it into a replica of the new one.
      data.set(killed, await launch(dir, killed, DATA_NODE_ARGS));
      killed = undefined;
    },
    pause(port) {
      data.get(port)?.child.kill('SIGSTOP');
    },
    resume(port) {
      data.get(port)?.child.kill('SIGCONT');
    },
    async stop() {
      process.removeListener('exit', killOnExit);
      await stopAll();
      await rm(dir, { recursive: true, force: true });
    },
  };
}
