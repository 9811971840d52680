/**
 * The chart's Sentinel-managed Redis (redis.sentinel.enabled) on the local Kubernetes cluster
 * (scripts/cluster/cluster.sh), with the images `npm run images` built: `helm install` runs three
 * pods, each a data node and a Sentinel, pod 0 the first primary and the others its replicas, every
 * Sentinel knowing them and each other, all of it behind the Secret's password. A client of the
 * contract (`createRedis`, as media nodes and the operator use it, from an operator pod) writes by
 * the Secret's redis+sentinel:// URL while the primary stops answering (its redis-server SIGSTOPped:
 * no preStop, no hand-over) and then dies: the Sentinels promote a replica, the client follows it
 * and writes again, a write a replica acknowledged before is on the new primary, and the old
 * primary comes back as a replica of it: one primary. Then a graceful delete of the new primary's
 * pod (a rollout, a drain) hands over before it stops (no +odown), and its successor — a new pod,
 * without data — comes back as a replica.
 *
 * Brings the cluster up if it is down, and down again only then. A release and namespace of its
 * own; CRDs installed by the release only when the cluster has none (then deleted at the end).
 * Needs root and Docker; run with `npm run test:cluster`.
 */
import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { CHART, clusterUp, RTCCDN_CRDS } from '../../scripts/harness/k8s-cdn.js';
import {
  type CommandResult,
  ensureKubeTestEnvBinaries,
  runCommand,
} from '../../scripts/harness/kube-testenv.js';

const REPO = fileURLToPath(new URL('../../', import.meta.url));
const CLUSTER = join(REPO, 'scripts/cluster/cluster.sh');
const RELEASE = 'sentinel-test';
const NS = `sentinel-${randomBytes(3).toString('hex')}`;
const SET = `${RELEASE}-rtccdn-redis`;
const HEADLESS = `${SET}-headless.${NS}.svc`;
const MASTER = 'rtccdn';
const REPLICAS = 3;
/** How long the client in the operator pod writes (the kill and the failover happen meanwhile). */
const WRITER_SECONDS = 50;

let kubeconfig = '';
let binDir = '';
let startedCluster = false;
let installedCrds = false;

async function run(tool: 'kubectl' | 'helm', args: string[], timeoutMs = 120_000): Promise<CommandResult> {
  return runCommand(join(binDir, tool), ['--kubeconfig', kubeconfig, ...args], { timeoutMs });
}
async function ok(tool: 'kubectl' | 'helm', args: string[], timeoutMs?: number): Promise<string> {
  const result = await run(tool, args, timeoutMs);
  if (result.code !== 0) {
    throw new Error(`${tool} ${args.join(' ')} exited ${result.code}: ${result.stderr.trim().slice(-1500)}`);
  }
  return result.stdout;
}
const kubectl = (...args: string[]) => ok('kubectl', args);
const getJson = async (...args: string[]) => JSON.parse(await kubectl(...args, '-o', 'json'));
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** redis-cli in a pod's container (authenticated by its REDISCLI_AUTH); null if it cannot run. */
async function cli(pod: string, container: 'redis' | 'sentinel', ...args: string[]): Promise<string | null> {
  const port = container === 'redis' ? '6379' : '26379';
  const result = await run(
    'kubectl',
    ['-n', NS, 'exec', pod, '-c', container, '--', 'redis-cli', '--no-auth-warning', '-p', port, ...args],
    30_000,
  );
  return result.code === 0 ? result.stdout.trim() : null;
}
const podOf = (host: string) => host.split('.')[0]!;

/** The primary (pod name) as the Sentinel of `pod` names it. */
async function primaryNamedBy(pod: string): Promise<string | null> {
  const reply = await cli(pod, 'sentinel', 'sentinel', 'get-master-addr-by-name', MASTER);
  return reply ? podOf(reply.split('\n')[0]!) : null;
}
async function waitFor<T>(
  what: string,
  probe: () => Promise<T | null | false>,
  timeoutMs: number,
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await probe();
    if (value !== null && value !== false) return value;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await sleep(1000);
  }
}
/** Every pod's role, by its own data node. */
async function roles(): Promise<Record<string, string | undefined>> {
  const entries = await Promise.all(
    Array.from({ length: REPLICAS }, async (_, i) => {
      const pod = `${SET}-${i}`;
      return [pod, (await cli(pod, 'redis', 'role'))?.split('\n')[0]] as const;
    }),
  );
  return Object.fromEntries(entries);
}
/** Until every Sentinel knows the primary's replicas and the other Sentinels (a failover needs them). */
async function waitForGroup(timeoutMs = 120_000): Promise<void> {
  await waitFor(
    'every Sentinel to know two replicas and two other Sentinels',
    async () => {
      const known = await Promise.all(
        Array.from({ length: REPLICAS }, async (_, i) => {
          const master = await cli(`${SET}-${i}`, 'sentinel', 'sentinel', 'master', MASTER);
          if (!master) return false;
          const fields = master.split('\n');
          const field = (name: string) => fields[fields.indexOf(name) + 1];
          return (
            field('num-slaves') === '2' && field('num-other-sentinels') === '2' && field('flags') === 'master'
          );
        }),
      );
      return known.every(Boolean);
    },
    timeoutMs,
  );
}

describe('helm/rtccdn with redis.sentinel.enabled on the local cluster', () => {
  let url = '';
  let operatorPod = '';

  beforeAll(async () => {
    binDir = await ensureKubeTestEnvBinaries();
    startedCluster = (await runCommand('bash', [CLUSTER, 'status'], { timeoutMs: 60_000 })).code !== 0;
    kubeconfig = await clusterUp();
    const existing = await run('kubectl', ['get', 'crd', ...RTCCDN_CRDS, '-o', 'name']);
    installedCrds = existing.stdout.trim() === '';
  }, 60 * 60_000);

  afterAll(async () => {
    if (kubeconfig) {
      await run('helm', ['uninstall', RELEASE, '-n', NS, '--ignore-not-found', '--wait']);
      await run('kubectl', ['delete', 'namespace', NS, '--ignore-not-found', '--timeout=120s']);
      if (installedCrds) await run('kubectl', ['delete', 'crd', ...RTCCDN_CRDS, '--ignore-not-found']);
    }
    if (startedCluster) {
      const down = await runCommand('bash', [CLUSTER, 'down'], {
        timeoutMs: 180_000,
        teeStderr: process.stderr,
      });
      if (down.code !== 0) throw new Error(`cluster down failed (exit ${down.code}): ${down.stderr}`);
    }
  }, 400_000);

  it(
    'installs three Ready pods: pod 0 the primary, two replicas, three Sentinels that know them all',
    async () => {
      await ok(
        'helm',
        [
          'install',
          RELEASE,
          CHART,
          '-n',
          NS,
          '--create-namespace',
          '-f',
          join(CHART, 'values-local.yaml'),
          '--set',
          'redis.sentinel.enabled=true',
          '--set',
          'operator.replicas=1',
          '--set',
          `crds.install=${installedCrds}`,
          '--wait',
          '--timeout',
          '5m',
        ],
        6 * 60_000,
      );
      const set = await getJson('-n', NS, 'get', 'statefulset', SET);
      expect(set.status.readyReplicas).toBe(REPLICAS);
      expect(await roles()).toEqual({ [`${SET}-0`]: 'master', [`${SET}-1`]: 'slave', [`${SET}-2`]: 'slave' });
      await waitForGroup();
      expect(await primaryNamedBy(`${SET}-2`)).toBe(`${SET}-0`);
      // Neither a data node nor a Sentinel answers without the password.
      for (const [container, port] of [
        ['redis', '6379'],
        ['sentinel', '26379'],
      ] as const) {
        const anonymous = await kubectl(
          '-n',
          NS,
          'exec',
          `${SET}-1`,
          '-c',
          container,
          '--',
          'env',
          '-u',
          'REDISCLI_AUTH',
          'redis-cli',
          '-p',
          port,
          'ping',
        );
        expect(`${container}: ${anonymous.trim()}`).toMatch(new RegExp(`^${container}: NOAUTH`));
      }

      const secret = await getJson('-n', NS, 'get', 'secret', SET);
      url = Buffer.from(secret.data.url, 'base64').toString();
      const hosts = Array.from(
        { length: REPLICAS },
        (_, i) => `${SET}-${i}\\.${SET}-headless\\.${NS}\\.svc:26379`,
      );
      expect(url).toMatch(
        new RegExp(
          `^redis\\+sentinel://:([A-Za-z0-9]{32})@${hosts.join(',')}/${MASTER}/0\\?sentinelPassword=\\1$`,
        ),
      );
      operatorPod = (
        await kubectl(
          '-n',
          NS,
          'get',
          'pods',
          '-l',
          'app.kubernetes.io/name=rtccdn-operator',
          '-o',
          'jsonpath={.items[0].metadata.name}',
        )
      ).trim();
    },
    8 * 60_000,
  );

  it(
    'a client of the contract follows a failover when the primary stops answering; the old primary comes back as a replica',
    async () => {
      const primary = `${SET}-0`;
      // The contract's client, as a media node or the operator builds it from spec.redis: one write a
      // replica acknowledged (WAIT), then INCRs every 200 ms for WRITER_SECONDS; prints when each
      // succeeded and why the others failed.
      const writer = [
        "const { createRedis } = await import('/app/dist/media-node/contract/redis.js');",
        'const redis = createRedis(process.argv[1], { maxRetriesPerRequest: 1, connectTimeout: 3000 });',
        "await redis.set('before-failover', 'kept');",
        'const acks = await redis.wait(1, 5000);',
        'const end = Date.now() + Number(process.argv[2]) * 1000;',
        'const okAt = [], errors = [];',
        'let last = 0;',
        'while (Date.now() < end) {',
        "  try { last = await redis.incr('counter'); okAt.push(Date.now()); }",
        "  catch (error) { errors.push(Date.now() + ': ' + error.message); }",
        '  await new Promise((resolve) => setTimeout(resolve, 200));',
        '}',
        'const role = (await redis.role())[0];',
        'console.log(JSON.stringify({ acks, last, role, okAt, errors: errors.slice(0, 5) }));',
        'redis.disconnect();',
      ].join('\n');
      const writing = run(
        'kubectl',
        [
          '-n',
          NS,
          'exec',
          operatorPod,
          '--',
          'node',
          '--input-type=module',
          '-e',
          writer,
          url,
          String(WRITER_SECONDS),
        ],
        (WRITER_SECONDS + 60) * 1000,
      );
      await waitFor(
        'the writer’s first INCR',
        async () => Number((await cli(primary, 'redis', 'get', 'counter')) ?? 0) > 0,
        30_000,
      );

      // The primary stops answering, as a hung or cut-off node does: no preStop, no hand-over.
      // Exits with the container when it is KILLed (redis-server is tini's child): not checked.
      const signalRedis = (signal: 'STOP' | 'KILL') =>
        run('kubectl', [
          '-n',
          NS,
          'exec',
          primary,
          '-c',
          'redis',
          '--',
          'sh',
          '-c',
          `for p in /proc/[0-9]*; do [ "$(cat $p/comm 2>/dev/null)" = redis-server ] && kill -${signal} "\${p#/proc/}"; done; true`,
        ]);
      expect((await signalRedis('STOP')).code).toBe(0);
      const promoted = await waitFor(
        'the Sentinels to promote a replica',
        async () => {
          const named = await primaryNamedBy(`${SET}-2`);
          return named && named !== primary ? named : null;
        },
        60_000,
      );
      const promotedAt = Date.now();
      expect([`${SET}-1`, `${SET}-2`]).toContain(promoted);
      // Then it dies: its container restarts (with its append-only file, in the pod's emptyDir).
      await signalRedis('KILL');

      const written = await writing;
      expect(written.code).toBe(0);
      const seen = JSON.parse(written.stdout.trim().split('\n').pop()!) as {
        acks: number;
        last: number;
        role: string;
        okAt: number[];
        errors: string[];
      };
      // What the client saw, in the test's output when an expectation below fails.
      console.log(`writer: ${JSON.stringify({ ...seen, okAt: seen.okAt.length })}`);
      expect(seen.acks).toBeGreaterThanOrEqual(1);
      // It wrote before the primary stopped and went on writing, to the promoted replica, after.
      expect(seen.okAt.filter((at) => at < promotedAt).length).toBeGreaterThan(0);
      expect(seen.okAt.filter((at) => at > promotedAt).length).toBeGreaterThan(10);
      expect(seen.role).toBe('master');
      expect(await cli(promoted, 'redis', 'get', 'before-failover')).toBe('kept');
      expect(Number(await cli(promoted, 'redis', 'get', 'counter'))).toBe(seen.last);

      // The old primary comes back as a replica of the new one, never as a second primary.
      await waitFor(
        'the old primary to replicate the new one',
        async () => (await cli(primary, 'redis', 'role'))?.split('\n')[0] === 'slave',
        120_000,
      );
      await waitFor(
        'the old primary to have the new primary’s data',
        async () => Number(await cli(primary, 'redis', 'get', 'counter')) === seen.last,
        60_000,
      );
      const after = await roles();
      expect(Object.values(after).filter((role) => role === 'master')).toHaveLength(1);
      expect(after[promoted]).toBe('master');
      expect(await kubectl('-n', NS, 'logs', primary, '-c', 'redis')).toContain(
        `starting as a replica of ${promoted}.${HEADLESS}`,
      );
    },
    6 * 60_000,
  );

  it(
    'a primary deleted gracefully (a rollout, a drain) hands over to a replica before it stops',
    async () => {
      await waitForGroup();
      const primary = await waitFor('a primary', () => primaryNamedBy(`${SET}-0`), 30_000);
      const oldUid = (await getJson('-n', NS, 'get', 'pod', primary)).metadata.uid;
      await kubectl('-n', NS, 'delete', 'pod', primary, '--wait=false');
      // The preStop asked for the failover: another node is primary while the old pod still runs.
      const promoted = await waitFor(
        'the hand-over',
        async () => {
          const witness = [0, 1, 2].map((i) => `${SET}-${i}`).find((pod) => pod !== primary)!;
          const named = await primaryNamedBy(witness);
          return named && named !== primary ? named : null;
        },
        60_000,
      );
      // A Sentinel of neither pod announces the switch (the leader does once the replicas are
      // reconfigured), and never saw the old primary down (+odown, which a primary that just died
      // gets after down-after-milliseconds): the failover was asked for (the preStop).
      const witness = [0, 1, 2].map((i) => `${SET}-${i}`).find((pod) => pod !== primary && pod !== promoted)!;
      const logs = await waitFor(
        `+switch-master in ${witness}'s Sentinel log`,
        async () => {
          const text = await kubectl('-n', NS, 'logs', witness, '-c', 'sentinel');
          return new RegExp(`\\+switch-master ${MASTER} ${primary}\\.`).test(text) ? text : null;
        },
        60_000,
      );
      expect(logs).not.toMatch(new RegExp(`\\+odown master ${MASTER} ${primary}\\.`));
      // The deleted pod's successor (the old one may run its preStop for a while) comes back as a
      // replica: one primary.
      await waitFor(
        `a new ${primary}`,
        async () => {
          const uid = (
            await run('kubectl', ['-n', NS, 'get', 'pod', primary, '-o', 'jsonpath={.metadata.uid}'])
          ).stdout.trim();
          return uid !== '' && uid !== oldUid;
        },
        120_000,
      );
      await kubectl('-n', NS, 'wait', 'pod', primary, '--for=condition=Ready', '--timeout=180s');
      await waitFor(
        'one primary',
        async () => Object.values(await roles()).filter((role) => role === 'master').length === 1,
        60_000,
      );
      expect((await roles())[primary]).toBe('slave');
    },
    5 * 60_000,
  );
});
