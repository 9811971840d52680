import type { FastifyInstance } from 'fastify';
import { loadConfig } from '../../media-node/src/config.js';
import { createInternalServer } from '../../media-node/src/http/internal.js';
import { createHttpServer } from '../../media-node/src/http/server.js';
import { createLogger } from '../../media-node/src/logger.js';
import { MediaNode } from '../../media-node/src/MediaNode.js';
import { TEST_CLIENT_QUOTAS } from './node-process.js';
import { portBlock } from './ports.js';

export interface RunningNode {
  node: MediaNode;
  app: FastifyInstance;
  baseUrl: string;
  /** The internal port: /metrics and the full stream list. */
  internalUrl: string;
  close(): Promise<void>;
}

/**
 * Starts a real media node (real mediasoup workers) in this process on loopback, HTTP on an
 * ephemeral port and RTC ports from a range no other test in this run uses.
 */
export async function startNode(env: Record<string, string> = {}): Promise<RunningNode> {
  for (let attempt = 0; ; attempt++) {
    const rtcPort = portBlock(2);
    const config = loadConfig({
      RTC_LISTEN_IP: '127.0.0.1',
      WORKERS: '2',
      LOG_LEVEL: process.env.TEST_LOG_LEVEL ?? 'silent',
      RTC_PORT: String(rtcPort),
      // Every test client is 127.0.0.1: per-client quotas are for the tests that are about them.
      ...TEST_CLIENT_QUOTAS,
      ...env,
    });
    const logger = createLogger(config.logLevel);
    let node: MediaNode;
    try {
      node = await MediaNode.create(config, logger);
    } catch (error) {
      if (attempt < 5 && /cannot listen/.test((error as Error).message)) continue;
      throw error;
    }
    const app = await createHttpServer(node);
    const internal = await createInternalServer(node);
    const portOf = async (server: FastifyInstance) => {
      await server.listen({ host: '127.0.0.1', port: 0 });
      const address = server.server.address();
      return typeof address === 'object' && address ? address.port : 0;
    };
    return {
      node,
      app,
      baseUrl: `${config.tls ? 'https' : 'http'}://127.0.0.1:${await portOf(app)}`,
      internalUrl: `http://127.0.0.1:${await portOf(internal)}`,
      async close() {
        await app.close();
        await internal.close();
        await node.close();
      },
    };
  }
}

/**
 * `promise`, or a failure naming `what` if it has not settled within `timeoutMs`: a liveness
 * bound (it does not hang, it does not wait for something that will not come), not a speed
 * target — those live in the benchmarks.
 */
export async function settlesWithin<T>(promise: Promise<T>, timeoutMs: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_resolve, reject) => {
    timer = setTimeout(() => reject(new Error(`${what} did not settle within ${timeoutMs} ms`)), timeoutMs);
  });
  try {
    return await Promise.race([promise, timeout]);
  } finally {
    clearTimeout(timer);
  }
}

export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** Polls `condition` until true or the timeout passes; returns the final result. */
export async function eventually(
  condition: () => boolean | Promise<boolean>,
  timeoutMs = 10_000,
): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (await condition()) return true;
    await sleep(50);
  }
  return condition();
}
