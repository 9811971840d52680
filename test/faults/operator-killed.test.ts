/**
 * Fault: the operator killed (SIGKILL) in the middle of its work, then started again — a pod
 * evicted or OOM-killed mid-reconcile. A real kube-apiserver, a real redis-server and operator
 * processes (operator/src/main.ts). What must hold after the restart: every StreamACL synced,
 * Redis holding exactly their keys (no record half-written, lost, duplicated or left behind by a
 * deletion), finalizers released, and a CDN's workloads the same set an uninterrupted reconcile
 * makes.
 */
import type { ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { Redis } from 'ioredis';
import { stringify } from 'yaml';
import { AclRecordSchema, deriveAclHashKey, hashAccessKey } from '../../media-node/contract/acl.js';
import { ClusterKeys } from '../../media-node/contract/redis.js';
import { redisPrefixFor } from '../../operator/src/controllers/shared.js';
import type { KubeTestEnv } from '../../scripts/harness/kube-testenv.js';
import { type RedisServer, startRedisServer } from '../../scripts/harness/redis.js';
import { kubectlGet, ok, spawnOperator, startApiServerWithCrds, waitFor } from '../operator/support.js';

const NS = 'media';
const ACLS = 300;

interface Obj {
  metadata: { name: string; uid: string; generation?: number; finalizers?: string[] };
  status?: { observedGeneration?: number; conditions?: { type: string; status: string; reason: string }[] };
  data?: Record<string, string>;
}

describe('the operator killed mid-reconcile and started again', () => {
  let env: KubeTestEnv;
  let redis: RedisServer;
  let direct: Redis;
  let operator: ChildProcess | undefined;
  const acls = new ClusterKeys(redisPrefixFor(NS, 'cdn'));
  const recordPrefix = `${acls.aclNamespace}stream:`;

  const kubectl = (args: string[], input?: string) =>
    env.kubectl(args, { ...(input === undefined ? {} : { input }), timeoutMs: 120_000 });
  const applyAll = async (objects: unknown[]) =>
    ok(
      await kubectl(['apply', '-f', '-'], stringify({ apiVersion: 'v1', kind: 'List', items: objects })),
      'apply',
    );
  const list = async (resource: string, selector?: string) =>
    JSON.parse(
      ok(
        await kubectl(['get', resource, '-n', NS, '-o', 'json', ...(selector ? ['-l', selector] : [])]),
        `get ${resource}`,
      ),
    ).items as Obj[];

  function startOperator(): ChildProcess {
    const child = spawnOperator(env, { LEADER_ELECTION: 'false', WORKERS: '4', LOG_LEVEL: 'warn' });
    child.stdout!.resume();
    child.stderr!.pipe(process.stderr);
    operator = child;
    return child;
  }

  async function kill(child: ChildProcess): Promise<void> {
    child.kill('SIGKILL');
    if (child.exitCode === null && child.signalCode === null) await once(child, 'exit');
  }

  /**
   * Starts `action` (e.g. a kubectl apply, which the operator works through as objects arrive)
   * and, while it runs, polls until `when` holds; then kills the operator at once. Returns what
   * `when` saw.
   */
  async function killWhen<T>(action: Promise<unknown>, what: string, when: () => Promise<T | undefined>) {
    const seen = await waitFor(what, when, 120_000, 5);
    await kill(operator!);
    await action;
    return seen;
  }

  /** ACL records in Redis, by pattern. */
  async function records() {
    const names = await direct.keys(`${recordPrefix}*`);
    const values = names.length > 0 ? await direct.mget(names) : [];
    return new Map(
      values.map((value) => {
        const record = AclRecordSchema.parse(JSON.parse(value!));
        return [record.pattern, record] as const;
      }),
    );
  }
  const recordCount = async () => (await direct.keys(`${recordPrefix}*`)).length;

  const keyOf = (i: number) => `key-of-stream-${String(i).padStart(4, '0')}-0123456789`;
  const streamAcl = (i: number) => ({
    apiVersion: 'rtccdn.io/v1alpha1',
    kind: 'StreamACL',
    metadata: { name: `show-${i}`, namespace: NS },
    spec: {
      cdnRef: { name: 'cdn' },
      stream: `show-${i}`,
      keys: [
        { id: 'inline', value: keyOf(i) },
        { id: 'partner', secretKeyRef: { name: 'partner-keys', key: 'acme' } },
      ],
    },
  });
  const cdn = (name: string, regions: string[]) => ({
    apiVersion: 'rtccdn.io/v1alpha1',
    kind: 'CDN',
    metadata: { name, namespace: NS },
    spec: {
      image: 'rtccdn/media-node:test',
      redis: { url: redis.url },
      regions: regions.map((region) => ({ name: region })),
      acl: { defaultPolicy: 'deny' },
    },
  });

  beforeAll(async () => {
    [env, redis] = await Promise.all([startApiServerWithCrds(), startRedisServer()]);
    direct = new Redis(redis.url);
    ok(await kubectl(['create', 'namespace', NS]), 'create namespace');
    startOperator();
    await applyAll([cdn('cdn', ['a'])]);
    await waitFor('the cluster Secret', () => kubectlGet<Obj>(env, 'secret', 'cdn-cluster', NS), 60_000);
  }, 40 * 60_000);

  afterAll(async () => {
    if (operator) await kill(operator);
    direct?.disconnect();
    await Promise.all([env?.stop(), redis?.stop()]);
  }, 60_000);

  it('syncs every StreamACL exactly once into Redis after being killed half-way through them', async () => {
    const partnerKey = 'partner-key-from-a-secret-01';
    await applyAll([
      {
        apiVersion: 'v1',
        kind: 'Secret',
        metadata: { name: 'partner-keys', namespace: NS, labels: { 'rtccdn.io/access-keys': 'true' } },
        stringData: { acme: partnerKey },
      },
    ]);
    const creating = applyAll(Array.from({ length: ACLS }, (_, i) => streamAcl(i)));
    const atKill = await killWhen(creating, 'a sixth of the ACLs written', async () => {
      const count = await recordCount();
      return count >= ACLS / 6 ? count : undefined;
    });
    expect(atKill).toBeLessThan(ACLS); // it really stopped half-way

    startOperator();
    const objects = await waitFor(
      `all ${ACLS} StreamACLs Synced at their generation`,
      async () => {
        const items = await list('streamacls.rtccdn.io');
        const done = items.filter(
          (item) =>
            item.status?.observedGeneration === item.metadata.generation &&
            item.status?.conditions?.some((c) => c.type === 'Synced' && c.status === 'True'),
        );
        return done.length === ACLS ? items : undefined;
      },
      180_000,
      500,
    );

    const secret = await kubectlGet<Obj>(env, 'secret', 'cdn-cluster', NS);
    const hashKey = deriveAclHashKey(Buffer.from(secret!.data!.clusterSecret!, 'base64').toString('utf8'));
    const stored = await records();
    expect(stored.size).toBe(ACLS);
    // The pattern index edges load from says the same.
    expect((await direct.smembers(acls.aclPatterns)).sort()).toEqual([...stored.keys()].sort());
    for (const object of objects) {
      const i = Number(object.metadata.name.slice('show-'.length));
      const record = stored.get(`show-${i}`);
      expect(record?.owner).toBe(object.metadata.uid);
      expect(
        record?.keys.map(({ id, hash }) => ({ id, hash })).sort((a, b) => a.id.localeCompare(b.id)),
      ).toEqual([
        { id: 'inline', hash: hashAccessKey(hashKey, keyOf(i)) },
        { id: 'partner', hash: hashAccessKey(hashKey, partnerKey) },
      ]);
      expect(object.metadata.finalizers).toEqual(['rtccdn.io/streamacl-cleanup']);
    }
  }, 300_000);

  it('finishes deleting StreamACLs (their keys out of Redis, finalizers released) after being killed half-way', async () => {
    const deleting = kubectl(['delete', 'streamacls.rtccdn.io', '--all', '-n', NS, '--wait=false']);
    const atKill = await killWhen(deleting, 'a sixth of the ACLs removed', async () => {
      const count = await recordCount();
      return count <= ACLS - ACLS / 6 ? count : undefined;
    });
    expect(atKill).toBeGreaterThan(0);

    startOperator();
    await waitFor(
      'every StreamACL gone',
      async () => ((await list('streamacls.rtccdn.io')).length === 0 ? true : undefined),
      180_000,
      500,
    );
    expect(await recordCount()).toBe(0);
    expect(await direct.smembers(acls.aclPatterns)).toEqual([]);
  }, 300_000);

  it('makes the same workloads for a CDN whether or not it was killed while creating them', async () => {
    // Many regions: the operator needs a while to create their objects, so the kill lands among them.
    const regions = Array.from({ length: 12 }, (_, i) => `r${i}`);
    const managed = async (name: string) => {
      const printed = ok(
        await kubectl([
          'get',
          'statefulsets,services,configmaps,secrets,nodes.rtccdn.io',
          '-n',
          NS,
          '-l',
          `rtccdn.io/cdn=${name}`,
          '-o',
          'name',
        ]),
        'get managed objects',
      );
      return printed
        .split('\n')
        .filter((line) => line !== '')
        .map((line) => line.replaceAll(name, '<cdn>'))
        .sort();
    };
    await killWhen(applyAll([cdn('killed', regions)]), 'the first of its objects', async () =>
      (await managed('killed')).length > 0 ? true : undefined,
    );
    const partial = await managed('killed');

    startOperator();
    await applyAll([cdn('whole', regions)]);
    const whole = await waitFor(
      'the uninterrupted CDN settled',
      async () => {
        const first = await managed('whole');
        await new Promise((resolve) => setTimeout(resolve, 2_000));
        const second = await managed('whole');
        return first.length > 0 && JSON.stringify(first) === JSON.stringify(second) ? second : undefined;
      },
      120_000,
      100,
    );
    expect(partial.length).toBeLessThan(whole.length); // the kill did interrupt it
    await waitFor(
      'the killed CDN completed alike',
      async () => (JSON.stringify(await managed('killed')) === JSON.stringify(whole) ? true : undefined),
      120_000,
      500,
    );
  }, 300_000);
});
