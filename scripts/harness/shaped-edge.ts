import { type ClusterNodeSpec, TestCluster } from './cluster.js';
import { createNetns, type NetnsLink } from './netns.js';
import { type RedisServer, startRedisServer } from './redis.js';

/**
 * A CDN whose edge `edge` runs in a network namespace, so its link to viewers on this host can be
 * shaped with tc (`netns.shape`); the other nodes and Redis listen on this side of the pair.
 * Needs root and iproute2 (`netnsAvailable()`).
 */
export interface ShapedEdgeCdn {
  netns: NetnsLink;
  redis: RedisServer;
  cluster: TestCluster;
  /** Lifts any limit, stops the nodes and Redis, removes the namespace. */
  close(): Promise<void>;
}

export async function startShapedEdgeCdn(options: {
  /** Environment of every node. */
  env?: Record<string, string>;
  /** Nodes on this host (`address` filled in). */
  hostNodes: Omit<ClusterNodeSpec, 'address'>[];
  /** The edge's own environment, on top of `env`. */
  edgeEnv?: Record<string, string>;
}): Promise<ShapedEdgeCdn> {
  const netns = await createNetns();
  let redis: RedisServer | undefined;
  let cluster: TestCluster | undefined;
  const close = async () => {
    await netns.shape(undefined).catch(() => undefined);
    await cluster?.stopAll();
    await redis?.stop();
    await netns.remove();
  };
  try {
    redis = await startRedisServer({ bind: netns.hostIp });
    cluster = new TestCluster(`redis://${netns.hostIp}:${redis.port}`, options.env ?? {});
    await cluster.add(...options.hostNodes.map((node) => ({ ...node, address: netns.hostIp })), {
      id: 'edge',
      role: 'edge',
      region: options.hostNodes[0]?.region ?? 'a',
      address: netns.nsIp,
      wrap: netns.exec,
      ...(options.edgeEnv ? { env: options.edgeEnv } : {}),
    });
    return { netns, redis, cluster, close };
  } catch (error) {
    await close();
    throw error;
  }
}

/** A call to a node's admin API (`Authorization: Bearer <token>`, JSON body): its status. */
export function adminApi(baseUrl: () => string, token: string) {
  return async (method: string, path: string, body?: unknown): Promise<number> => {
    const response = await fetch(`${baseUrl()}${path}`, {
      method,
      headers: {
        Authorization: `Bearer ${token}`,
        ...(body !== undefined ? { 'Content-Type': 'application/json' } : {}),
      },
      ...(body !== undefined ? { body: JSON.stringify(body) } : {}),
    });
    return response.status;
  };
}
