import { InternalClient, type InternalTarget } from '../../media-node/contract/internal-api.js';
import type { NodeDump } from '../../media-node/src/MediaNode.js';
import { type NodeProcess, spawnNode } from './node-process.js';
import { freeTcpPorts, portBlock } from './ports.js';

export const TEST_CLUSTER_SECRET = 'test-cluster-secret-0123456789';

export interface ClusterNodeSpec {
  id: string;
  role: 'origin' | 'edge' | 'transcoder' | 'all';
  region: string;
  env?: Record<string, string>;
  /** The address the node listens on and announces (default 127.0.0.1). */
  address?: string;
  /** A command the node runs under, e.g. ['ip', 'netns', 'exec', 'ns1']. */
  wrap?: string[];
}

export interface ClusterNode {
  spec: ClusterNodeSpec;
  process: NodeProcess;
  baseUrl: string;
  internalUrl: string;
}

/**
 * Media nodes as separate OS processes (one mediasoup worker each), sharing one Redis — a
 * small CDN on loopback. Node ids are the handles tests use.
 */
export class TestCluster {
  readonly redisUrl: string;
  readonly nodes = new Map<string, ClusterNode>();
  readonly client: InternalClient;
  readonly #env: Record<string, string>;
  readonly #secret: string;

  constructor(redisUrl: string, env: Record<string, string> = {}, clusterSecret = TEST_CLUSTER_SECRET) {
    this.redisUrl = redisUrl;
    this.#env = env;
    this.#secret = clusterSecret;
    this.client = new InternalClient(clusterSecret);
  }

  /** Starts nodes in parallel and waits until each is ready (registered in Redis). */
  async add(...specs: ClusterNodeSpec[]): Promise<ClusterNode[]> {
    return Promise.all(specs.map((spec) => this.#start(spec)));
  }

  /** A port picked free can be taken before the node binds it: try again with other ports. */
  async #start(spec: ClusterNodeSpec): Promise<ClusterNode> {
    for (let attempt = 1; ; attempt++) {
      try {
        return await this.#startOnce(spec);
      } catch (error) {
        if (attempt >= 3 || !/during start: .*cannot listen/.test((error as Error).message)) throw error;
      }
    }
  }

  async #startOnce(spec: ClusterNodeSpec): Promise<ClusterNode> {
    const [port, internalPort] = (await freeTcpPorts(2)) as [number, number];
    const rtcPort = portBlock(1);
    const pipeStart = portBlock(40);
    const process = await spawnNode(
      {
        ROLE: spec.role,
        REGION: spec.region,
        NODE_ID: spec.id,
        REDIS_URL: this.redisUrl,
        CLUSTER_SECRET: this.#secret,
        PORT: String(port),
        INTERNAL_PORT: String(internalPort),
        HOST: spec.address ?? '127.0.0.1',
        RTC_LISTEN_IP: spec.address ?? '127.0.0.1',
        INTERNAL_ADDRESS: spec.address ?? '127.0.0.1',
        RTC_PORT: String(rtcPort),
        PIPE_PORT_RANGE: `${pipeStart}-${pipeStart + 39}`,
        WORKERS: '1',
        ...this.#env,
        ...spec.env,
      },
      spec.id,
      spec.wrap ? { wrap: spec.wrap } : {},
    );
    const node: ClusterNode = {
      spec,
      process,
      baseUrl: process.baseUrl,
      internalUrl: process.internalUrl,
    };
    this.nodes.set(spec.id, node);
    return node;
  }

  node(id: string): ClusterNode {
    const node = this.nodes.get(id);
    if (!node) throw new Error(`no test node ${id}`);
    return node;
  }

  /** The node's own count of streams, relays and mediasoup objects (signed internal call). */
  dump(id: string): Promise<NodeDump> {
    return this.client.request<NodeDump>('GET', this.target(id), '/internal/v1/dump');
  }

  /** Where signed internal calls to node `id` go (the signature names the node). */
  target(id: string): InternalTarget {
    return { nodeId: id, internalUrl: this.node(id).internalUrl };
  }

  /** SIGKILL: the node vanishes without any cleanup, as in a crash. */
  kill(id: string): void {
    this.node(id).process.child.kill('SIGKILL');
    this.nodes.delete(id);
  }

  async stop(id: string): Promise<number | null> {
    const node = this.node(id);
    this.nodes.delete(id);
    return node.process.stop();
  }

  /**
   * SIGTERM to every node; one still running after `graceMs` is killed. An edge that still has
   * viewers drains on SIGTERM (up to DRAIN_DEADLINE_MS): teardown does not wait for that.
   */
  async stopAll(graceMs = 3_000): Promise<void> {
    await Promise.all(
      [...this.nodes.values()].map(async (node) => {
        const killer = setTimeout(() => node.process.child.kill('SIGKILL'), graceMs);
        await node.process.stop().catch(() => node.process.child.kill('SIGKILL'));
        clearTimeout(killer);
      }),
    );
    this.nodes.clear();
  }
}

/** Sum of a counter over a dump's workers. */
export function workerTotal(
  dump: NodeDump,
  field: 'routers' | 'transports' | 'producers' | 'consumers',
): number {
  return dump.workers.reduce((sum, worker) => sum + worker[field], 0);
}
