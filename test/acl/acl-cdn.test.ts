import { readFileSync } from 'node:fs';
import { describe, expect, it } from '@jest/globals';
import { Redis } from 'ioredis';
import { useTestCluster } from '../../scripts/harness/cluster-fixture.js';
import { eventually, sleep } from '../../scripts/harness/node.js';
import { postSdp } from '../../scripts/harness/peers.js';

const whepOffer = readFileSync(new URL('../fixtures/libwebrtc-whep-offer.sdp', import.meta.url), 'utf8');
const ADMIN_TOKEN = 'admin-token-0123456789abcdef';

/**
 * Stream access control across a CDN: an origin (with the ACL REST API) and two edges as
 * separate processes, Redis, real libwebrtc viewers presenting keys.
 */
describe('stream access control (origin + 2 edges, Redis, real viewers)', () => {
  const fixture = useTestCluster(
    {
      ADMIN_TOKEN,
      ACL_FAILURES_PER_CLIENT: '5',
      ACL_MAX_STALENESS_MS: '3000',
      RELAY_LINGER_MS: '1000',
    },
    { id: 'origin', role: 'origin', region: 'a' },
    { id: 'edge-1', role: 'edge', region: 'a', env: { REGIONAL_RELAY: 'false' } },
    { id: 'edge-2', role: 'edge', region: 'b' },
  );
  const { url, publisher, viewer } = fixture;

  async function api(method: string, path: string, body?: unknown, token = ADMIN_TOKEN) {
    const response = await fetch(`${url('origin')}${path}`, {
      method,
      headers: {
        ...(token ? { Authorization: `Bearer ${token}` } : {}),
        ...(body !== undefined ? { 'Content-Type': 'application/json' } : {}),
      },
      ...(body !== undefined ? { body: JSON.stringify(body) } : {}),
    });
    const text = await response.text();
    return { status: response.status, body: text ? JSON.parse(text) : undefined };
  }

  /** ACL changes reach edges by pub/sub a few ms after the API answers: wait for enforcement. */
  async function untilEnforced(edge: string, stream: string) {
    const enforced = await eventually(
      async () => (await postSdp(`${url(edge)}/whep/${stream}`, whepOffer)).status === 401,
      3000,
    );
    expect(enforced).toBe(true);
  }

  it('manages ACLs over REST: validated, authenticated, never showing key values', async () => {
    expect((await api('GET', '/api/v1/streams/rest/acl', undefined, '')).status).toBe(401);
    expect((await api('GET', '/api/v1/streams/rest/acl', undefined, 'wrong-token-0123456789')).status).toBe(
      401,
    );
    expect((await api('GET', '/api/v1/streams/rest/acl')).status).toBe(404);

    const bad = await api('PUT', '/api/v1/streams/rest/acl', { keys: [{ id: 'short', key: 'abc' }] });
    expect(bad.status).toBe(400);
    expect(bad.body.message).toMatch(/keys\.0\.key: key must be at least 16 characters/);
    expect((await api('PUT', '/api/v1/streams/bad%20name/acl', { keys: [] })).status).toBe(400);
    const duplicate = await api('PUT', '/api/v1/streams/rest/acl', {
      keys: [
        { id: 'a', key: 'key-value-000000a' },
        { id: 'a', key: 'key-value-000000b' },
      ],
    });
    expect(duplicate.status).toBe(400);

    const put = await api('PUT', '/api/v1/streams/rest/acl', {
      keys: [{ id: 'a', key: 'key-value-000000a', expiresAt: '2099-01-01T00:00:00Z' }],
    });
    expect(put.status).toBe(200);
    expect(put.body).toMatchObject({
      stream: 'rest',
      keys: [{ id: 'a', expiresAt: '2099-01-01T00:00:00.000Z' }],
    });
    const added = await api('POST', '/api/v1/streams/rest/acl/keys', {
      keys: [{ id: 'b', key: 'key-value-000000b' }],
    });
    expect(added.status).toBe(201);
    expect(added.body.keys.map((key: { id: string }) => key.id)).toEqual(['a', 'b']);
    expect(
      (await api('POST', '/api/v1/streams/rest/acl/keys', { keys: [{ id: 'b', key: 'key-value-000000c' }] }))
        .status,
    ).toBe(409);
    expect((await api('DELETE', '/api/v1/streams/rest/acl/keys/zzz')).status).toBe(404);
    const removed = await api('DELETE', '/api/v1/streams/rest/acl/keys/a');
    expect(removed.body.keys).toEqual([{ id: 'b' }]);
    const listed = await api('GET', '/api/v1/streams/rest/acl');
    expect(JSON.stringify(listed.body)).not.toMatch(/key-value/);
    // Nothing in Redis opens the stream either: only keyed hashes are stored.
    const dump = await fetch(`${url('origin')}/api/v1/openapi.json`);
    expect((await dump.json()).paths).toHaveProperty(['/api/v1/streams/{stream}/acl/keys/{id}']);
    expect((await api('DELETE', '/api/v1/streams/rest/acl')).status).toBe(204);
    expect((await api('DELETE', '/api/v1/streams/rest/acl')).status).toBe(404);
  });

  it('stores only keyed hashes in Redis', async () => {
    await api('PUT', '/api/v1/streams/hashed/acl', { keys: [{ id: 'k', key: 'plain-text-secret-01' }] });
    const client = new Redis(fixture.redis.url);
    const raw = await client.get('rtccdn:acl:stream:hashed');
    client.disconnect();
    expect(raw).toMatch(/"hash":"[0-9a-f]{64}"/);
    expect(raw).not.toContain('plain-text-secret-01');
  });

  it('plays public streams without a key; protected ones need the right key (header or ?key=)', async () => {
    const pub = publisher();
    expect((await pub.publish(url('origin'), 'open')).status).toBe(201);
    const free = viewer();
    expect((await free.play(url('edge-1'), 'open')).status).toBe(201);
    await free.waitForFrames(3);

    expect(
      (
        await api('PUT', '/api/v1/streams/paid-*/acl', {
          keys: [{ id: 'alice', key: 'alice-key-0123456789' }],
        })
      ).status,
    ).toBe(200);
    const paid = publisher();
    expect((await paid.publish(url('origin'), 'paid-show')).status).toBe(201);

    await untilEnforced('edge-1', 'paid-show');
    const anonymous = await postSdp(`${url('edge-1')}/whep/paid-show`, whepOffer);
    expect(anonymous.status).toBe(401);
    expect(anonymous.headers.get('www-authenticate')).toMatch(/^Bearer realm="rtccdn"/);
    const wrong = await postSdp(`${url('edge-1')}/whep/paid-show`, whepOffer, {
      Authorization: 'Bearer not-a-valid-key-1234',
    });
    expect(wrong.status).toBe(403);
    expect(JSON.parse(wrong.body).message).toBe('access denied');

    const withHeader = viewer();
    expect((await withHeader.play(url('edge-1'), 'paid-show', { key: 'alice-key-0123456789' })).status).toBe(
      201,
    );
    const withQuery = viewer();
    expect(
      (await withQuery.play(url('edge-2'), 'paid-show', { query: '?key=alice-key-0123456789' })).status,
    ).toBe(201);
    await Promise.all([withHeader.waitForFrames(3), withQuery.waitForFrames(3)]);
    await pub.unpublish(url('origin'));
    await paid.unpublish(url('origin'));
  }, 40_000);

  it('cuts viewers on every edge within 1 s when their key is removed; other keys keep playing', async () => {
    await api('PUT', '/api/v1/streams/webinar/acl', {
      keys: [
        { id: 'acme', key: 'acme-key-0123456789' },
        { id: 'globex', key: 'globex-key-0123456789' },
      ],
    });
    const pub = publisher();
    expect((await pub.publish(url('origin'), 'webinar')).status).toBe(201);
    const acmeOn1 = viewer();
    const acmeOn2 = viewer();
    const globexOn2 = viewer();
    await acmeOn1.play(url('edge-1'), 'webinar', { key: 'acme-key-0123456789' });
    await acmeOn2.play(url('edge-2'), 'webinar', { key: 'acme-key-0123456789' });
    await globexOn2.play(url('edge-2'), 'webinar', { key: 'globex-key-0123456789' });
    await Promise.all([acmeOn1, acmeOn2, globexOn2].map((v) => v.waitForFrames(3)));

    const removedAt = Date.now();
    expect((await api('DELETE', '/api/v1/streams/webinar/acl/keys/acme')).status).toBe(200);
    const cut = await eventually(async () => {
      const [one, two] = await Promise.all([fixture.cluster.dump('edge-1'), fixture.cluster.dump('edge-2')]);
      return one.sessions === 0 && two.sessions === 1;
    }, 5000);
    // How fast is the benchmark's question (bench/acl.ts); here: they are cut, the others are not.
    console.log(`acme viewers on two edges cut ${Date.now() - removedAt} ms after the key was removed`);
    expect(cut).toBe(true);
    await globexOn2.waitForFrames(globexOn2.framesWithCode + 10);
    // The removed key is refused from now on, on both edges.
    for (const edge of ['edge-1', 'edge-2']) {
      const again = await postSdp(`${url(edge)}/whep/webinar`, whepOffer, {
        Authorization: 'Bearer acme-key-0123456789',
      });
      expect(again.status).toBe(403);
    }
    const metrics = await (await fetch(`${fixture.internalUrl('edge-2')}/metrics`)).text();
    expect(metrics).toMatch(/^rtccdn_revocations_total\{reason="key-removed"\} 1$/m);
    expect(metrics).toMatch(/^rtccdn_revocation_cutoff_seconds_count 1$/m);
    await pub.unpublish(url('origin'));
  }, 40_000);

  it('cuts a viewer when its key expires, by the edge timer', async () => {
    const expiresAt = new Date(Date.now() + 4000).toISOString();
    await api('PUT', '/api/v1/streams/timed/acl', {
      keys: [{ id: 'trial', key: 'trial-key-0123456789', expiresAt }],
    });
    const pub = publisher();
    expect((await pub.publish(url('origin'), 'timed')).status).toBe(201);
    const v = viewer();
    expect((await v.play(url('edge-1'), 'timed', { key: 'trial-key-0123456789' })).status).toBe(201);
    await v.waitForFrames(3);
    expect(await eventually(async () => (await fixture.cluster.dump('edge-1')).sessions === 0, 8000)).toBe(
      true,
    );
    expect(Date.now()).toBeGreaterThanOrEqual(Date.parse(expiresAt));
    expect(
      (
        await postSdp(`${url('edge-1')}/whep/timed`, whepOffer, {
          Authorization: 'Bearer trial-key-0123456789',
        })
      ).status,
    ).toBe(403);
    await pub.unpublish(url('origin'));
  }, 30_000);

  it('keeps the ACL across republish and across an edge restart', async () => {
    await api('PUT', '/api/v1/streams/kept/acl', { keys: [{ id: 'k', key: 'kept-key-0123456789' }] });
    const first = publisher();
    expect((await first.publish(url('origin'), 'kept')).status).toBe(201);
    expect(await first.unpublish(url('origin'))).toBe(200);
    const second = publisher();
    expect((await second.publish(url('origin'), 'kept')).status).toBe(201);
    await untilEnforced('edge-1', 'kept');

    await fixture.cluster.stop('edge-1');
    await fixture.cluster.add({ id: 'edge-1', role: 'edge', region: 'a', env: { REGIONAL_RELAY: 'false' } });
    expect((await postSdp(`${url('edge-1')}/whep/kept`, whepOffer)).status).toBe(401);
    const v = viewer();
    expect((await v.play(url('edge-1'), 'kept', { key: 'kept-key-0123456789' })).status).toBe(201);
    await v.waitForFrames(3);
    await second.unpublish(url('origin'));
  }, 40_000);

  it('rate-limits failed attempts per client with 429 and Retry-After', async () => {
    await api('PUT', '/api/v1/streams/guarded/acl', { keys: [{ id: 'k', key: 'guarded-key-0123456' }] });
    await untilEnforced('edge-2', 'guarded');
    // Failures count per client IP over a minute (ACL_FAILURES_PER_CLIENT=5); earlier tests may
    // have spent some of them, so find where the limit bites rather than assume it.
    const statuses: number[] = [];
    for (let i = 0; i < 7; i++) {
      const attempt = await postSdp(`${url('edge-2')}/whep/guarded`, whepOffer, {
        Authorization: `Bearer guess-${i}-0123456789`,
      });
      statuses.push(attempt.status);
      if (attempt.status === 429) expect(Number(attempt.headers.get('retry-after'))).toBeGreaterThan(0);
    }
    const firstBlocked = statuses.indexOf(429);
    expect(firstBlocked).toBeGreaterThan(0);
    expect(firstBlocked).toBeLessThanOrEqual(5);
    expect(statuses.slice(0, firstBlocked).every((status) => status === 403)).toBe(true);
    expect(statuses.slice(firstBlocked).every((status) => status === 429)).toBe(true);
    // The right key is never refused for others' (or its own client's) failed guesses: it is
    // admitted (404: the stream is not live).
    const right = await postSdp(`${url('edge-2')}/whep/guarded`, whepOffer, {
      Authorization: 'Bearer guarded-key-0123456',
    });
    expect(right.status).toBe(404);
    const metrics = await (await fetch(`${fixture.internalUrl('edge-2')}/metrics`)).text();
    expect(metrics).toMatch(/^rtccdn_admissions_total\{result="429"\} \d+$/m);
  });

  it('with Redis down: admitted viewers keep playing, protected joins get 503 after the cache bound, public ones play', async () => {
    await api('PUT', '/api/v1/streams/outage-paid/acl', { keys: [{ id: 'k', key: 'outage-key-0123456' }] });
    const paid = publisher();
    const free = publisher();
    expect((await paid.publish(url('origin'), 'outage-paid')).status).toBe(201);
    expect((await free.publish(url('origin'), 'outage-free')).status).toBe(201);
    const admitted = viewer();
    await admitted.play(url('edge-1'), 'outage-paid', { key: 'outage-key-0123456' });
    const firstFree = viewer();
    await firstFree.play(url('edge-1'), 'outage-free');
    await Promise.all([admitted.waitForFrames(3), firstFree.waitForFrames(3)]);

    await fixture.redis.kill();
    try {
      await sleep(3500); // past ACL_MAX_STALENESS_MS
      const refused = await postSdp(`${url('edge-1')}/whep/outage-paid`, whepOffer, {
        Authorization: 'Bearer outage-key-0123456',
      });
      expect(refused.status).toBe(503);
      expect(refused.headers.get('retry-after')).toBeTruthy();
      const lateFree = viewer();
      expect((await lateFree.play(url('edge-1'), 'outage-free')).status).toBe(201);
      await lateFree.waitForFrames(3);
      await admitted.waitForFrames(admitted.framesWithCode + 10);
    } finally {
      await fixture.redis.restart();
    }
    // Redis came back empty (no persistence): the edge does not open the stream it protected;
    // it stays locked (503) until its ACL is written again, then the key works.
    const tryPaid = () =>
      postSdp(`${url('edge-1')}/whep/outage-paid`, whepOffer, { Authorization: 'Bearer outage-key-0123456' });
    expect(
      await eventually(async () => {
        const attempt = await tryPaid();
        return attempt.status === 503 && /lost/.test(JSON.parse(attempt.body).message);
      }, 15_000),
    ).toBe(true);
    expect((await tryPaid()).status).toBe(503);
    expect(
      await eventually(
        async () =>
          (
            await api('PUT', '/api/v1/streams/outage-paid/acl', {
              keys: [{ id: 'k', key: 'outage-key-0123456' }],
            })
          ).status === 200,
        10_000,
      ),
    ).toBe(true);
    expect(
      await eventually(async () => {
        const attempt = await tryPaid();
        if (attempt.status === 201) {
          await fetch(`${url('edge-1')}${attempt.headers.get('location')}`, { method: 'DELETE' });
        }
        return attempt.status === 201;
      }, 5000),
    ).toBe(true);
    await admitted.waitForFrames(admitted.framesWithCode + 5);
  }, 60_000);
});
