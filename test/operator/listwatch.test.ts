/**
 * The list-watch cache against a real kube-apiserver: it follows changes across watches the
 * server closes (short server-side timeouts) without listing again, relists when its
 * resourceVersion is too old (410: the server runs without a watch cache and compacts etcd
 * every few seconds, so an outage of a few seconds is enough), restarts a watch that went
 * silent, and backs off while the server is unreachable. Outages and silent connections are
 * injected in the transport; everything else is the real server.
 */
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import type { KubeClient } from '../../operator/src/kube/client.js';
import { KubeClient as Client } from '../../operator/src/kube/client.js';
import { KubeApiError } from '../../operator/src/kube/errors.js';
import { CONFIG_MAP_TYPE } from '../../operator/src/kube/resources.js';
import {
  KubeConfigTransport,
  type KubeRequest,
  type KubeResponse,
  type KubeStream,
  type KubeTransport,
} from '../../operator/src/kube/transport.js';
import { type CacheEvent, ListWatch } from '../../operator/src/runtime/ListWatch.js';
import {
  ensureKubeTestEnvBinaries,
  type KubeTestEnv,
  startKubeTestEnv,
} from '../../scripts/harness/kube-testenv.js';
import { settlesWithin } from '../../scripts/harness/node.js';
import { ok, sleep, testLogger, waitFor } from './support.js';

/** A transport that can be made unreachable, or hand out one watch that never says anything. */
class FaultyTransport implements KubeTransport {
  readonly server: string;
  down = false;
  stallNextWatch = false;
  attempts = 0;
  #connections = new AbortController();
  constructor(readonly inner: KubeTransport) {
    this.server = inner.server;
  }
  #check(request: KubeRequest): void {
    this.attempts++;
    if (this.down)
      throw new KubeApiError(
        `${request.method} ${request.path}`,
        0,
        'NetworkError',
        'injected: connection refused',
      );
  }
  request(request: KubeRequest): Promise<KubeResponse> {
    this.#check(request);
    return this.inner.request(request);
  }
  async stream(request: KubeRequest): Promise<KubeStream> {
    this.#check(request);
    if (!this.stallNextWatch) {
      const signal = request.signal
        ? AbortSignal.any([request.signal, this.#connections.signal])
        : this.#connections.signal;
      return this.inner.stream({ ...request, signal });
    }
    this.stallNextWatch = false;
    // A half-open connection: the response started, then nothing, ever (until aborted).
    const signal = request.signal;
    return {
      status: 200,
      errorBody: '',
      lines: (async function* () {
        await new Promise((resolve) => signal?.addEventListener('abort', resolve, { once: true }));
      })(),
    };
  }
  /** Cuts every open watch connection (the watch ends as if the network dropped it). */
  dropConnections(): void {
    this.#connections.abort();
    this.#connections = new AbortController();
  }
  close(): void {
    this.inner.close();
  }
}

const NS = 'lw';
const configMap = (name: string, value: string) => ({ metadata: { name, namespace: NS }, data: { value } });

describe('ListWatch on a real API server', () => {
  let env: KubeTestEnv;
  let faulty: FaultyTransport;
  let client: KubeClient;
  let admin: KubeClient;
  const watches: ListWatch[] = [];

  const start = (options: Partial<ConstructorParameters<typeof ListWatch>[0]> = {}) => {
    const events: CacheEvent[] = [];
    const lw = new ListWatch({
      client,
      type: CONFIG_MAP_TYPE,
      namespace: NS,
      logger: testLogger({ test: 'listwatch' }),
      watchTimeoutSeconds: 1,
      watchdogGraceMs: 500,
      backoff: { baseMs: 200, maxMs: 1_000 },
      ...options,
    });
    lw.addHandler((event) => events.push(event));
    lw.start();
    watches.push(lw);
    return { lw, events };
  };
  const values = (lw: ListWatch) =>
    Object.fromEntries(
      lw
        .list()
        .map((object) => [object.metadata.name, (object as { data?: { value?: string } }).data?.value]),
    );

  beforeAll(async () => {
    const binDir = await ensureKubeTestEnvBinaries();
    // No watch cache (watches read etcd) and frequent compaction: old resourceVersions expire fast.
    env = await startKubeTestEnv({
      binDir,
      apiServerArgs: ['--watch-cache=false', '--etcd-compaction-interval=2s'],
    });
    ok(await env.kubectl(['create', 'namespace', NS]));
    const transport = KubeConfigTransport.fromSource({ kubeconfigPath: env.kubeconfigPath });
    faulty = new FaultyTransport(transport);
    client = new Client(faulty);
    admin = new Client(KubeConfigTransport.fromSource({ kubeconfigPath: env.kubeconfigPath }));
  }, 40 * 60_000);

  afterAll(async () => {
    await Promise.all(watches.map((lw) => lw.stop()));
    faulty?.close();
    admin?.transport.close();
    await env?.stop();
  }, 60_000);

  it('follows changes across watches the server ends, without listing again', async () => {
    await admin.create(CONFIG_MAP_TYPE, configMap('before', '0'));
    const { lw, events } = start();
    expect(await lw.waitForSync()).toBe(true);
    expect(values(lw)).toEqual({ before: '0' });
    for (let round = 1; round <= 4; round++) {
      await admin.apply(CONFIG_MAP_TYPE, configMap('before', String(round)));
      await admin.apply(CONFIG_MAP_TYPE, configMap(`new-${round}`, String(round)));
      await sleep(1_200); // longer than the server-side timeout: the watch is replaced meanwhile
    }
    await admin.delete(CONFIG_MAP_TYPE, NS, 'new-1');
    await waitFor(
      'cache in step',
      () => values(lw).before === '4' && values(lw)['new-1'] === undefined && values(lw)['new-4'] === '4',
    );
    expect(values(lw)).toEqual({ before: '4', 'new-2': '2', 'new-3': '3', 'new-4': '4' });
    expect(lw.stats.lists).toBe(1);
    expect(lw.stats.watches).toBeGreaterThanOrEqual(3);
    expect(lw.stats.restarts.closed).toBeGreaterThanOrEqual(2);
    expect(lw.stats.restarts.gone + lw.stats.restarts.error).toBe(0);
    expect(
      events.filter((event) => event.type === 'deleted').map((event) => event.object.metadata.name),
    ).toEqual(['new-1']);
    await lw.stop();
  });

  it('lists again after 410 when its resourceVersion was compacted away during an outage', async () => {
    const { lw, events } = start({ watchTimeoutSeconds: 30 });
    expect(await lw.waitForSync()).toBe(true);
    const versionBeforeOutage = lw.resourceVersion;
    faulty.down = true;
    faulty.dropConnections();
    await sleep(300);
    const listsBefore = lw.stats.lists;
    await admin.apply(CONFIG_MAP_TYPE, configMap('before', 'changed-while-down'));
    await admin.delete(CONFIG_MAP_TYPE, NS, 'new-2');
    await admin.apply(CONFIG_MAP_TYPE, configMap('during', 'x'));
    // Let etcd compact past the version the cache knows (a couple of compaction intervals).
    await sleep(5_000);
    // That version is gone now: the server answers a watch from it with 410 Expired.
    const error = await admin
      .watch(
        CONFIG_MAP_TYPE,
        NS,
        { resourceVersion: versionBeforeOutage },
        () => undefined,
        new AbortController().signal,
      )
      .then(
        () => undefined,
        (failure: unknown) => failure,
      );
    expect(error).toMatchObject({ status: 410, reason: 'Expired' });

    faulty.down = false;
    await waitFor(
      'cache repaired',
      () =>
        values(lw).before === 'changed-while-down' && values(lw).during === 'x' && !('new-2' in values(lw)),
      20_000,
    );
    expect(lw.stats.restarts.gone).toBeGreaterThanOrEqual(1);
    expect(lw.stats.lists).toBe(listsBefore + 1);
    expect(lw.stats.restarts.error).toBeGreaterThanOrEqual(1);
    // The relist told the handlers what changed, deletions included.
    expect(events.some((event) => event.type === 'deleted' && event.object.metadata.name === 'new-2')).toBe(
      true,
    );
    await lw.stop();
  });

  it('restarts a watch that goes silent (half-open connection), from where it was', async () => {
    const { lw } = start({ watchTimeoutSeconds: 1, watchdogGraceMs: 500 });
    expect(await lw.waitForSync()).toBe(true);
    faulty.stallNextWatch = true;
    await waitFor('a stalled watch detected', () => lw.stats.restarts.stalled >= 1, 15_000);
    await admin.apply(CONFIG_MAP_TYPE, configMap('after-stall', 'y'));
    await waitFor('event after the stall', () => values(lw)['after-stall'] === 'y');
    expect(lw.stats.lists).toBe(1);
    await lw.stop();
  });

  it('stops promptly whenever it is stopped, even in the middle of its list', async () => {
    for (let round = 0; round < 10; round++) {
      const { lw } = start({ watchTimeoutSeconds: 300 });
      await sleep(round * 3);
      // Not after its 300 s watch: a liveness bound, not a speed target.
      await settlesWithin(lw.stop(), 10_000, `stop() in round ${round}`);
    }
  });

  it('backs off while the server is unreachable instead of retrying in a tight loop', async () => {
    faulty.down = true;
    const attemptsBefore = faulty.attempts;
    const { lw } = start({ backoff: { baseMs: 200, maxMs: 2_000 } });
    await sleep(3_000);
    const attempts = faulty.attempts - attemptsBefore;
    expect(lw.synced).toBe(false);
    expect(attempts).toBeGreaterThanOrEqual(2);
    expect(attempts).toBeLessThanOrEqual(8);
    faulty.down = false;
    expect(await lw.waitForSync()).toBe(true);
    await lw.stop();
  });
});
