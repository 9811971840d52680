/**
 * A paid stream never becomes watchable without a key because of what an edge cannot read or
 * does not know yet: an invalid ACL record, a record from a newer version, or — in a CDN whose
 * ACLs the operator writes — a Redis that lost its data before the edge even started. Real
 * Redis, real node processes, real libwebrtc peers.
 */
import { readFileSync } from 'node:fs';
import { describe, expect, it } from '@jest/globals';
import { Redis } from 'ioredis';
import { RedisAclStore } from '../../media-node/contract/acl.js';
import { ClusterKeys } from '../../media-node/contract/redis.js';
import { createLogger } from '../../media-node/src/logger.js';
import { useTestCluster } from '../../scripts/harness/cluster-fixture.js';
import { eventually } from '../../scripts/harness/node.js';
import { postSdp } from '../../scripts/harness/peers.js';

const ADMIN_TOKEN = 'admin-token-0123456789abcdef';
const whepOffer = readFileSync(new URL('../fixtures/libwebrtc-whep-offer.sdp', import.meta.url), 'utf8');

describe('ACLs an edge cannot read', () => {
  const fixture = useTestCluster(
    { ADMIN_TOKEN, REDIS_PREFIX: 'fc:' },
    { id: 'origin', role: 'origin', region: 'a' },
    { id: 'edge', role: 'edge', region: 'a' },
  );
  const { url } = fixture;
  const acl = (method: string, path: string, body?: unknown) =>
    fetch(`${url('origin')}/api/v1/streams/${path}`, {
      method,
      headers: { Authorization: `Bearer ${ADMIN_TOKEN}`, 'Content-Type': 'application/json' },
      ...(body ? { body: JSON.stringify(body) } : {}),
    });

  it('refuses (400) a key that expires at or before the epoch, and writes nothing', async () => {
    for (const expiresAt of ['1970-01-01T00:00:00Z', '1969-12-31T23:59:59Z']) {
      const response = await acl('PUT', 'odd/acl', {
        keys: [{ id: 'k', key: 'a-key-0123456789abc', expiresAt }],
      });
      expect(`${expiresAt} ${response.status}`).toBe(`${expiresAt} 400`);
    }
    expect((await acl('GET', 'odd/acl')).status).toBe(404);
  });

  it('refuses every viewer (503) of a stream whose stored record it cannot read, until it is rewritten', async () => {
    expect((await fixture.publisher().publish(url('origin'), 'paid')).status).toBe(201);
    expect((await fixture.viewer().play(url('edge'), 'paid')).status).toBe(201); // public so far
    // A record no edge can read lands in Redis (a bug elsewhere, an upgrade's newer version).
    const keys = new ClusterKeys('fc:');
    const direct = new Redis(fixture.redis.url);
    try {
      const value = JSON.stringify({
        v: 1,
        pattern: 'paid',
        keys: [{ id: 'k', hash: 'a'.repeat(64), expiresAt: 0 }],
        updatedAt: Date.now(),
      });
      const version = await direct.incr(keys.aclVersion);
      await direct.multi().set(keys.aclRecord('paid'), value).sadd(keys.aclPatterns, 'paid').exec();
      const epoch = await direct.get(keys.aclEpoch);
      await direct.publish(
        keys.aclEvents,
        JSON.stringify({ v: 1, version, epoch: epoch ?? '', pattern: 'paid', op: 'put', at: Date.now() }),
      );
    } finally {
      direct.disconnect();
    }
    expect(
      await eventually(
        async () => (await postSdp(`${url('edge')}/whep/paid`, whepOffer)).status === 503,
        5000,
      ),
    ).toBe(true);
    const refused = await postSdp(`${url('edge')}/whep/paid`, whepOffer);
    expect(refused.status).toBe(503);
    expect(JSON.parse(refused.body).message).toMatch(/cannot be read/);
    // Another stream is not affected.
    expect((await fixture.publisher().publish(url('origin'), 'free')).status).toBe(201);
    expect((await fixture.viewer().play(url('edge'), 'free')).status).toBe(201);
    // Rewriting the ACL repairs it.
    expect((await acl('PUT', 'paid/acl', { keys: [{ id: 'k', key: 'paid-key-0123456789' }] })).status).toBe(
      200,
    );
    const keyed = fixture.viewer();
    expect(
      await eventually(
        async () => (await keyed.play(url('edge'), 'paid', { key: 'paid-key-0123456789' })).status === 201,
        5000,
      ),
    ).toBe(true);
    expect((await postSdp(`${url('edge')}/whep/paid`, whepOffer)).status).toBe(401);
  }, 60_000);
});

describe('an operator-managed CDN (ACL_API=kubernetes) whose Redis lost its data', () => {
  const fixture = useTestCluster(
    { ACL_API: 'kubernetes', REDIS_PREFIX: 'om:' },
    { id: 'origin', role: 'origin', region: 'a' },
  );
  const { url } = fixture;

  it('admits nobody on an edge that starts before the operator has rewritten every ACL, then resumes', async () => {
    expect((await fixture.publisher().publish(url('origin'), 'free')).status).toBe(201);
    // The edge starts on an empty store (a Redis that restarted without persistence): it cannot
    // tell the stream the operator will protect from a public one, so it refuses both.
    await fixture.cluster.add({ id: 'edge', role: 'edge', region: 'a' });
    const refused = await postSdp(`${url('edge')}/whep/free`, whepOffer);
    expect(refused.status).toBe(503);
    expect(JSON.parse(refused.body).message).toMatch(/being restored by the operator/);
    const metrics = await (await fetch(`${fixture.internalUrl('edge')}/metrics`)).text();
    expect(metrics).toMatch(/rtccdn_acl_store_synced 0/);
    // The operator (its store, as the AclStoreSync uses it) writes every StreamACL — here one —
    // and marks the epoch complete.
    const operatorStore = new RedisAclStore({
      redisUrl: fixture.redis.url,
      prefix: 'om:',
      subscribe: false,
      logger: createLogger('silent'),
    });
    try {
      await operatorStore.connected(5000);
      const epoch = await operatorStore.ensureEpoch();
      await operatorStore.update('paid', () => [{ id: 'k', hash: 'b'.repeat(64) }]);
      expect(await operatorStore.markSynced(epoch)).toBe(true);
    } finally {
      await operatorStore.close();
    }
    expect(
      await eventually(
        async () => (await postSdp(`${url('edge')}/whep/free`, whepOffer)).status === 201,
        5000,
      ),
    ).toBe(true);
    const v = fixture.viewer();
    expect((await v.play(url('edge'), 'free')).status).toBe(201);
    await v.waitForFrames(3);
    expect((await postSdp(`${url('edge')}/whep/paid`, whepOffer)).status).toBe(401);
  }, 60_000);
});
