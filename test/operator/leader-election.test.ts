/**
 * Leader election over a real coordination.k8s.io Lease: of several candidates exactly one
 * leads; a leader that stops releases the Lease and a follower takes over at its next poll; a
 * leader that can no longer reach the API server stops its work before a follower can take
 * over, and the follower does within the lease duration. Then the same with whole operators:
 * two Managers in one process (only the leader reconciles), and two operator processes
 * (operator/src/main.ts: health and metrics ports, SIGTERM exits 0 and releases the Lease).
 */
import type { ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { createInterface } from 'node:readline';
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { stringify } from 'yaml';
import { KubeClient } from '../../operator/src/kube/client.js';
import { KubeApiError } from '../../operator/src/kube/errors.js';
import { LEASE_TYPE } from '../../operator/src/kube/resources.js';
import type { KubeRequest, KubeTransport } from '../../operator/src/kube/transport.js';
import { KubeConfigTransport } from '../../operator/src/kube/transport.js';
import { LeaderElector } from '../../operator/src/runtime/LeaderElector.js';
import type { KubeTestEnv } from '../../scripts/harness/kube-testenv.js';
import { type RedisServer, startRedisServer } from '../../scripts/harness/redis.js';
import {
  counterValue,
  ok,
  sleep,
  spawnOperator,
  startApiServerWithCrds,
  testLogger,
  testManager,
  waitFor,
} from './support.js';

const NS = 'rtccdn-system';
const LEASE = { leaseDurationMs: 3_000, renewDeadlineMs: 2_000, retryPeriodMs: 400 };

/** A transport that can lose the API server (every call fails while `down`). */
class PartitionableTransport implements KubeTransport {
  readonly server: string;
  down = false;
  constructor(readonly inner: KubeTransport) {
    this.server = inner.server;
  }
  request(request: KubeRequest) {
    if (this.down)
      return Promise.reject(new KubeApiError(request.path, 0, 'NetworkError', 'injected partition'));
    return this.inner.request(request);
  }
  stream(request: KubeRequest) {
    if (this.down)
      return Promise.reject(new KubeApiError(request.path, 0, 'NetworkError', 'injected partition'));
    return this.inner.stream(request);
  }
  close() {
    this.inner.close();
  }
}

interface Term {
  who: string;
  start: number;
  end?: number;
}

describe('leader election on a real API server', () => {
  let env: KubeTestEnv;
  let redis: RedisServer;
  const clients: KubeClient[] = [];

  const newClient = (transport?: KubeTransport) => {
    const client = new KubeClient(
      transport ?? KubeConfigTransport.fromSource({ kubeconfigPath: env.kubeconfigPath }),
    );
    clients.push(client);
    return client;
  };
  const holder = async (client: KubeClient, name: string) =>
    ((await client.get(LEASE_TYPE, NS, name)) as { spec?: { holderIdentity?: string } } | undefined)?.spec
      ?.holderIdentity;

  /** Runs a candidate that records its terms; its work lasts until the term ends. */
  function candidate(client: KubeClient, identity: string, lease: string, terms: Term[]) {
    const elector = new LeaderElector({
      client,
      namespace: NS,
      name: lease,
      identity,
      logger: testLogger({ identity }),
      ...LEASE,
    });
    const stop = new AbortController();
    const running = elector.run(stop.signal, {
      onStartedLeading: async (term) => {
        const record: Term = { who: identity, start: Date.now() };
        terms.push(record);
        await new Promise((resolve) => term.addEventListener('abort', resolve, { once: true }));
        await sleep(100); // stopping controllers takes a moment
        record.end = Date.now();
      },
    });
    return {
      elector,
      stop: async () => {
        stop.abort();
        await running;
      },
    };
  }

  /** No two terms overlap. */
  const noOverlap = (terms: Term[]) => {
    const sorted = [...terms].sort((a, b) => a.start - b.start);
    for (let i = 1; i < sorted.length; i++)
      expect(sorted[i]!.start).toBeGreaterThanOrEqual(sorted[i - 1]!.end ?? Number.POSITIVE_INFINITY);
  };

  beforeAll(async () => {
    [env, redis] = await Promise.all([startApiServerWithCrds(), startRedisServer()]);
    ok(await env.kubectl(['create', 'namespace', NS]));
  }, 40 * 60_000);

  afterAll(async () => {
    for (const client of clients) client.transport.close();
    await Promise.all([env?.stop(), redis?.stop()]);
  }, 60_000);

  it('elects exactly one of three; a stopping leader releases and a follower takes over at once', async () => {
    const terms: Term[] = [];
    const candidates = ['a', 'b', 'c'].map((id) => candidate(newClient(), id, 'trio', terms));
    const admin = newClient();
    await waitFor('a leader', () => terms.length >= 1);
    await sleep(2 * LEASE.leaseDurationMs);
    expect(terms).toHaveLength(1);
    expect(candidates.filter((c) => c.elector.isLeader)).toHaveLength(1);
    const first = terms[0]!;
    expect(await holder(admin, 'trio')).toBe(first.who);

    const leader = candidates.find((c) => c.elector.identity === first.who)!;
    await leader.stop();
    expect(first.end).toBeDefined();
    // Released on the way out (not left to expire): the lease names nobody, or already the next.
    expect(await holder(admin, 'trio')).not.toBe(first.who);
    await waitFor('a new leader', () => terms.length >= 2);
    expect(terms[1]!.who).not.toBe(first.who);
    expect(await holder(admin, 'trio')).toBe(terms[1]!.who);
    for (const c of candidates) if (c !== leader) await c.stop();
    expect(await holder(admin, 'trio')).toBe('');
    noOverlap(terms);
    const lease = (await admin.get(LEASE_TYPE, NS, 'trio')) as { spec: { leaseTransitions: number } };
    expect(lease.spec.leaseTransitions).toBeGreaterThanOrEqual(1);
  });

  it('a leader cut off from the API server stops its work before a follower takes over', async () => {
    const terms: Term[] = [];
    const partitioned = new PartitionableTransport(
      KubeConfigTransport.fromSource({ kubeconfigPath: env.kubeconfigPath }),
    );
    const first = candidate(newClient(partitioned), 'first', 'cut', terms);
    await waitFor('first leads', () => first.elector.isLeader);
    const second = candidate(newClient(), 'second', 'cut', terms);
    await sleep(1_000);
    expect(second.elector.isLeader).toBe(false);

    partitioned.down = true;
    // Once the partitioned leader's lease expires (a liveness bound here; no speed target).
    await waitFor('second leads', () => second.elector.isLeader, 15_000);
    expect(terms.find((term) => term.who === 'first')!.end).toBeDefined();
    noOverlap(terms);
    partitioned.down = false;
    await first.stop();
    await second.stop();
  });

  it('does not keep the Lease when its work ends on its own: releases it and fails', async () => {
    const client = newClient();
    const elector = new LeaderElector({
      client,
      namespace: NS,
      name: 'broken-work',
      identity: 'broken',
      logger: testLogger(),
      ...LEASE,
    });
    const run = elector.run(new AbortController().signal, {
      onStartedLeading: async () => {
        throw new Error('controllers crashed');
      },
    });
    await expect(run).rejects.toThrow("the leader's work ended on its own; lease released");
    expect(await holder(client, 'broken-work')).toBe('');
  });

  it('two operator Managers: only the leader reconciles; the other takes over when it stops', async () => {
    const leaderElection = { namespace: NS, leaseName: 'managers', ...LEASE };
    const one = testManager({ client: newClient(), identity: 'one', leaderElection });
    const two = testManager({ client: newClient(), identity: 'two', leaderElection });
    one.manager.start();
    two.manager.start();
    const cdn = (name: string) =>
      stringify({
        apiVersion: 'rtccdn.io/v1alpha1',
        kind: 'CDN',
        metadata: { name, namespace: NS },
        spec: {
          image: 'ghcr.io/rtccdn/media-node:0.1.0',
          redis: { url: redis.url },
          regions: [{ name: 'eu-west' }],
        },
      });
    ok(await env.kubectl(['apply', '-f', '-'], { input: cdn('first') }));
    await waitFor(
      'first reconciled',
      async () => (await env.kubectl(['get', 'statefulset', 'first-eu-west-edge', '-n', NS])).code === 0,
    );
    const [leader, follower] = one.manager.leader ? [one, two] : [two, one];
    expect(follower.manager.leader).toBe(false);
    expect(follower.manager.ready).toBe(true); // a standby is ready
    // The StatefulSet appears during a reconcile; the counter ticks when it ends.
    await waitFor(
      'a reconcile counted',
      async () => (await counterValue(leader.metrics, 'reconciles', {})) > 0,
    );
    expect(await counterValue(follower.metrics, 'reconciles', {})).toBe(0);
    expect((await leader.metrics.leader.get()).values[0]?.value).toBe(1);
    expect((await follower.metrics.leader.get()).values[0]?.value).toBe(0);

    await leader.manager.stop();
    await waitFor('follower leads', () => follower.manager.leader && follower.manager.ready, 10_000);
    ok(await env.kubectl(['apply', '-f', '-'], { input: cdn('second') }));
    await waitFor(
      'second reconciled by the new leader',
      async () => (await env.kubectl(['get', 'statefulset', 'second-eu-west-edge', '-n', NS])).code === 0,
    );
    expect(await counterValue(follower.metrics, 'reconciles', { controller: 'cdn' })).toBeGreaterThan(0);
    await follower.manager.stop();
  });

  describe('operator processes (operator/src/main.ts)', () => {
    const children: ChildProcess[] = [];

    afterAll(() => {
      for (const child of children) if (child.exitCode === null) child.kill('SIGKILL');
    });

    function operator(identity: string, extraEnv: Record<string, string> = {}) {
      const child = spawnOperator(env, {
        OPERATOR_NAMESPACE: NS,
        POD_NAME: identity,
        LEASE_NAME: 'processes',
        LEASE_DURATION_MS: String(LEASE.leaseDurationMs),
        RENEW_DEADLINE_MS: String(LEASE.renewDeadlineMs),
        RETRY_PERIOD_MS: String(LEASE.retryPeriodMs),
        ...extraEnv,
      });
      children.push(child);
      let stderr = '';
      child.stderr!.on('data', (chunk: Buffer) => {
        stderr += chunk.toString();
      });
      const logs: string[] = [];
      const port = new Promise<number>((resolve, reject) => {
        createInterface({ input: child.stdout! }).on('line', (line) => {
          logs.push(line);
          try {
            const entry = JSON.parse(line) as { msg?: string; healthPort?: number };
            if (entry.msg === 'operator started' && entry.healthPort) resolve(entry.healthPort);
          } catch {
            // not a log line
          }
        });
        child.once('exit', (code) => reject(new Error(`operator ${identity} exited (${code}): ${stderr}`)));
      });
      port.catch(() => undefined); // awaited by the tests that expect a start
      /** How it ended: the exit code, stderr, and the last log lines when the code is not 0. */
      const exited = async () => {
        const [code] = (child.exitCode === null ? await once(child, 'exit') : [child.exitCode]) as [number];
        return { code, stderr, ...(code === 0 ? {} : { logs: logs.slice(-15) }) };
      };
      return { child, port, stderr: () => stderr, exited };
    }

    const metric = async (port: number, name: string) => {
      const text = await (await fetch(`http://127.0.0.1:${port}/metrics`)).text();
      const line = text.split('\n').find((candidateLine) => candidateLine.startsWith(`${name} `));
      return line === undefined ? undefined : Number(line.split(' ')[1]);
    };

    it('exits 2 with one line naming the variable on a bad configuration', async () => {
      const { child, stderr } = operator('bad', { LEADER_ELECTION: 'maybe' });
      const [code] = (await once(child, 'exit')) as [number];
      expect(code).toBe(2);
      expect(stderr().trim()).toBe(
        'rtccdn operator: invalid configuration: LEADER_ELECTION must be true or false (got "maybe")',
      );
      const missing = operator('bad2', { OPERATOR_NAMESPACE: '' });
      expect(((await once(missing.child, 'exit')) as [number])[0]).toBe(2);
      expect(missing.stderr()).toContain('OPERATOR_NAMESPACE is required with LEADER_ELECTION=true');
    }, 60_000);

    it('serves health and metrics, leads with one of two processes, and hands over on SIGTERM', async () => {
      const alpha = operator('alpha');
      const alphaPort = await alpha.port;
      await waitFor(
        'alpha leads',
        async () => (await metric(alphaPort, 'rtccdn_operator_leader')) === 1,
        30_000,
      );
      const beta = operator('beta');
      const betaPort = await beta.port;
      expect((await fetch(`http://127.0.0.1:${alphaPort}/healthz`)).status).toBe(200);
      await waitFor(
        'both ready',
        async () => (await fetch(`http://127.0.0.1:${betaPort}/readyz`)).status === 200,
        30_000,
      );
      await sleep(1_000);
      expect(await metric(betaPort, 'rtccdn_operator_leader')).toBe(0);
      const admin = newClient();
      expect(await holder(admin, 'processes')).toBe('alpha');

      alpha.child.kill('SIGTERM');
      expect(await alpha.exited()).toEqual({ code: 0, stderr: '' });
      // The lease was released on the way out: beta takes it at its next poll.
      await waitFor(
        'beta leads',
        async () => (await metric(betaPort, 'rtccdn_operator_leader')) === 1,
        15_000,
      );
      expect(await holder(admin, 'processes')).toBe('beta');
      beta.child.kill('SIGTERM');
      expect(await beta.exited()).toEqual({ code: 0, stderr: '' });
      expect(await holder(admin, 'processes')).toBe('');
    }, 120_000);
  });
});
