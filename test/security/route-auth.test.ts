/**
 * Every authenticated route of every server we run refuses a request without credentials,
 * whatever form its URL takes: plain, %-encoded (`/%61pi/v1/%73treams/...`), absolute-form
 * (`DELETE http://host/api/...`), or HEAD for a GET. The check must be made on the routed,
 * decoded request — a raw-URL prefix check is skipped by all of these.
 */
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import type { FastifyInstance } from 'fastify';
import { createLogger } from '../../media-node/src/logger.js';
import { createAclApiServer } from '../../operator/src/aclapi/server.js';
import type { KubeClient } from '../../operator/src/kube/client.js';
import { TestCluster } from '../../scripts/harness/cluster.js';
import { type RunningNode, startNode } from '../../scripts/harness/node.js';
import { rawRequest } from '../../scripts/harness/raw-http.js';
import { type RedisServer, startRedisServer } from '../../scripts/harness/redis.js';

const ADMIN_TOKEN = 'admin-token-0123456789abcdef';

/** The ACL API's routes, each as a method and path (the same on a media node and the operator). */
const ACL_ROUTES: [string, string][] = [
  ['GET', '/api/v1/streams/paid/acl'],
  ['HEAD', '/api/v1/streams/paid/acl'],
  ['PUT', '/api/v1/streams/paid/acl'],
  ['DELETE', '/api/v1/streams/paid/acl'],
  ['POST', '/api/v1/streams/paid/acl/keys'],
  ['DELETE', '/api/v1/streams/paid/acl/keys/k1'],
];

/** The forms of one path a router maps to the same route. */
function forms(baseUrl: string, path: string): string[] {
  const host = new URL(baseUrl).host;
  return [
    path,
    path.replace('/api/', '/%61pi/'),
    path.replace('/streams/', '/%73treams/'),
    path.replace('/acl', '/%61cl'),
    `http://${host}${path}`,
    `http://${host}${path.replace('/streams/', '/%73treams/')}`,
  ];
}

const JSON_BODY = JSON.stringify({ keys: [{ id: 'k1', key: 'a-key-of-16-chars-at-least' }] });

async function expectAllRefused(baseUrl: string, routes: [string, string][], expected = 401) {
  const answers: string[] = [];
  for (const [method, path] of routes) {
    for (const target of forms(baseUrl, path)) {
      const response = await rawRequest(baseUrl, method, target, {
        headers: { 'Content-Type': 'application/json' },
        ...(method === 'PUT' || method === 'POST' ? { body: JSON_BODY } : {}),
      });
      answers.push(`${method} ${target} → ${response.status}`);
    }
  }
  expect(answers).toEqual(answers.map((answer) => answer.replace(/→ \d+$/, `→ ${expected}`)));
}

describe('media node ACL API', () => {
  let running: RunningNode;
  beforeAll(async () => {
    running = await startNode({ ADMIN_TOKEN, ACL_FAILURES_PER_CLIENT: '1000' });
  });
  afterAll(() => running.close());

  it('refuses every route in every URL form without the token', async () => {
    await expectAllRefused(running.baseUrl, ACL_ROUTES);
  });

  it('routes the encoded forms to the handlers (so the check above is not vacuous)', async () => {
    const put = await rawRequest(running.baseUrl, 'PUT', '/%61pi/v1/%73treams/paid/acl', {
      headers: { 'Content-Type': 'application/json', Authorization: `Bearer ${ADMIN_TOKEN}` },
      body: JSON_BODY,
    });
    expect(put.status).toBe(200);
    const host = new URL(running.baseUrl).host;
    const get = await rawRequest(running.baseUrl, 'GET', `http://${host}/api/v1/streams/paid/acl`, {
      headers: { Authorization: `Bearer ${ADMIN_TOKEN}` },
    });
    expect(get.status).toBe(200);
    expect(JSON.parse(get.body)).toMatchObject({ stream: 'paid', keys: [{ id: 'k1' }] });
  });

  it('never answers a cross-origin preflight of the ACL API, and does for WHEP', async () => {
    const preflight = (path: string, method: string) =>
      fetch(`${running.baseUrl}${path}`, {
        method: 'OPTIONS',
        headers: {
          Origin: 'https://evil.example',
          'Access-Control-Request-Method': method,
          'Access-Control-Request-Headers': 'authorization,content-type',
        },
      });
    for (const [method, path] of ACL_ROUTES.filter(([m]) => m !== 'HEAD')) {
      const response = await preflight(path, method);
      expect(`${path} ${response.headers.get('access-control-allow-origin')}`).toBe(`${path} null`);
    }
    const whep = await preflight('/whep/paid', 'POST');
    expect(whep.headers.get('access-control-allow-origin')).toBe('*');
    const session = await preflight('/whep/paid/00000000-0000-4000-8000-000000000000', 'DELETE');
    expect(session.headers.get('access-control-allow-origin')).toBe('*');
  });
});

describe('media node ACL API: failed ADMIN_TOKEN attempts', () => {
  let running: RunningNode;
  beforeAll(async () => {
    running = await startNode({ ADMIN_TOKEN, ACL_FAILURES_PER_CLIENT: '3' });
  });
  afterAll(() => running.close());

  it('are limited per client: 401 three times, then 429 with Retry-After even for the right token', async () => {
    const get = (token: string, forwardedFor?: string) =>
      fetch(`${running.baseUrl}/api/v1/streams/x/acl`, {
        headers: {
          Authorization: `Bearer ${token}`,
          ...(forwardedFor ? { 'X-Forwarded-For': forwardedFor } : {}),
        },
      });
    for (let i = 0; i < 3; i++) expect((await get(`wrong-token-000000000${i}`)).status).toBe(401);
    const blocked = await get('wrong-token-0000000009');
    expect(blocked.status).toBe(429);
    expect(Number(blocked.headers.get('retry-after'))).toBeGreaterThan(0);
    expect((await get(ADMIN_TOKEN)).status).toBe(429);
    // X-Forwarded-For from a client that is not a trusted proxy changes nothing.
    expect((await get(ADMIN_TOKEN, '203.0.113.7')).status).toBe(429);
  });
});

describe('operator ACL API', () => {
  let api: FastifyInstance;
  let base: string;
  const touched: string[] = [];
  beforeAll(async () => {
    // Authentication comes before any Kubernetes call: a client that records being used proves it.
    const client = new Proxy({} as KubeClient, {
      get: (_target, property) => async () => {
        touched.push(String(property));
        return { items: [] };
      },
    });
    api = await createAclApiServer({
      client,
      adminToken: ADMIN_TOKEN,
      tokenFailuresPerClient: 1000,
      logger: createLogger('silent'),
    });
    await api.listen({ host: '127.0.0.1', port: 0 });
    base = `http://127.0.0.1:${(api.server.address() as { port: number }).port}`;
  });
  afterAll(() => api.close());

  it('refuses every route in every URL form without the token, before touching Kubernetes', async () => {
    await expectAllRefused(base, ACL_ROUTES);
    expect(touched).toEqual([]);
  });

  it('refuses a ?cdn= that is not namespace/name of DNS labels', async () => {
    for (const cdn of ['a/b/c', 'Default/live', '../x', 'ns/', `${'a'.repeat(64)}/x`]) {
      const response = await fetch(`${base}/api/v1/streams/x/acl?cdn=${encodeURIComponent(cdn)}`, {
        headers: { Authorization: `Bearer ${ADMIN_TOKEN}` },
      });
      expect(`${cdn} ${response.status}`).toBe(`${cdn} 400`);
    }
    expect(touched).toEqual([]);
  });
});

describe('internal API', () => {
  let redis: RedisServer;
  let cluster: TestCluster;
  beforeAll(async () => {
    redis = await startRedisServer();
    cluster = new TestCluster(redis.url);
    await cluster.add({ id: 'edge', role: 'edge', region: 'a' });
  }, 60_000);
  afterAll(async () => {
    await cluster?.stopAll();
    await redis?.stop();
  });

  it('refuses every signed route in every URL form without a signature', async () => {
    const routes: [string, string][] = [
      ['POST', '/internal/v1/relays'],
      ['DELETE', '/internal/v1/relays/r1'],
      ['GET', '/internal/v1/dump'],
      ['HEAD', '/internal/v1/dump'],
      ['POST', '/internal/v1/renditions'],
      ['POST', '/internal/v1/drain'],
      ['GET', '/internal/v1/hls/live/source/media.m3u8?t=a.b&ip=10.0.0.1'],
      ['GET', '/internal/v1/hls/live/source/seg1.m4s?t=a.b&ip=10.0.0.1'],
    ];
    const internal = cluster.node('edge').internalUrl;
    const host = new URL(internal).host;
    const answers: string[] = [];
    for (const [method, path] of routes) {
      for (const target of [path, path.replace('/internal/', '/%69nternal/'), `http://${host}${path}`]) {
        const response = await rawRequest(internal, method, target, {
          headers: { 'Content-Type': 'application/json' },
          ...(method === 'POST' ? { body: '{"draining":true}' } : {}),
        });
        answers.push(`${method} ${target} → ${response.status}`);
      }
    }
    expect(answers).toEqual(answers.map((answer) => answer.replace(/→ \d+$/, '→ 401')));
    // Nothing drained.
    expect((await fetch(`${cluster.node('edge').baseUrl}/readyz`)).status).toBe(200);
  });
});
