import { afterAll, afterEach, beforeAll } from '@jest/globals';
import { type ClusterNodeSpec, TestCluster } from './cluster.js';
import { type PublisherOptions, TestPublisher, TestViewer } from './peers.js';
import { type RedisServer, startRedisServer } from './redis.js';

export interface ClusterFixture {
  readonly redis: RedisServer;
  readonly cluster: TestCluster;
  /** The public base URL of node `id`. */
  url(id: string): string;
  /** The node's internal port (/metrics, stream list, signed node-to-node API). */
  internalUrl(id: string): string;
  /** A publisher closed after the current test. */
  publisher(options?: PublisherOptions): TestPublisher;
  /** A viewer closed after the current test. */
  viewer(): TestViewer;
}

/**
 * Jest hooks for a describe block whose tests share one real Redis and the media node
 * processes `specs` (with `env` for all of them): started before the first test, the peers made
 * through the fixture closed after each test, everything stopped after the last.
 */
export function useTestCluster(env: Record<string, string>, ...specs: ClusterNodeSpec[]): ClusterFixture {
  let redis: RedisServer | undefined;
  let cluster: TestCluster | undefined;
  const peers: { close(): void }[] = [];
  const started = <T>(value: T | undefined, what: string): T => {
    if (value === undefined) throw new Error(`the test ${what} is not started (beforeAll failed?)`);
    return value;
  };
  const fixture: ClusterFixture = {
    get redis() {
      return started(redis, 'Redis');
    },
    get cluster() {
      return started(cluster, 'cluster');
    },
    url: (id) => fixture.cluster.node(id).baseUrl,
    internalUrl: (id) => fixture.cluster.node(id).internalUrl,
    publisher: (options = {}) => {
      const peer = new TestPublisher(options);
      peers.push(peer);
      return peer;
    },
    viewer: () => {
      const peer = new TestViewer();
      peers.push(peer);
      return peer;
    },
  };

  beforeAll(async () => {
    redis = await startRedisServer();
    cluster = new TestCluster(redis.url, env);
    await cluster.add(...specs);
  }, 60_000);

  afterEach(() => {
    for (const peer of peers.splice(0)) peer.close();
  });

  afterAll(async () => {
    await cluster?.stopAll();
    await redis?.stop();
  });

  return fixture;
}
