import { describe, expect, it } from '@jest/globals';
import { randomAclHashKey } from '../../../media-node/contract/acl.js';
import type { StreamACL } from '../../../operator/src/api/v1alpha1.js';
import {
  patternOwner,
  referencedSecrets,
  sameKeys,
  storedKeys,
  streamAclStatus,
} from '../../../operator/src/controllers/streamacl/desired.js';

const acl = (status?: StreamACL['status']): StreamACL =>
  ({
    apiVersion: 'rtccdn.io/v1alpha1',
    kind: 'StreamACL',
    metadata: { name: 'a', namespace: 'media', generation: 3 },
    spec: {
      cdnRef: { name: 'cdn' },
      stream: 'sales-*',
      keys: [
        { id: 'k1', value: 'value-0123456789abc' },
        { id: 'k2', secretKeyRef: { name: 's', key: 'x' } },
        { id: 'k3', secretKeyRef: { name: 's', key: 'y' } },
      ],
    },
    ...(status ? { status } : {}),
  }) as StreamACL;

describe('StreamACL desired state', () => {
  it('stores hashes, never values, and compares key sets in any order', () => {
    const hashKey = randomAclHashKey();
    const a = storedKeys(hashKey, [
      { id: 'x', value: 'secret-value-000001' },
      { id: 'y', value: 'secret-value-000002', expiresAt: 1_800_000_000_000 },
    ]);
    expect(JSON.stringify(a)).not.toContain('secret-value');
    expect(sameKeys(a, [...a].reverse())).toBe(true);
    expect(sameKeys(a, a.slice(0, 1))).toBe(false);
    // A key added to the spec is not in Redis yet: not the same (either way round).
    expect(sameKeys(a.slice(0, 1), a)).toBe(false);
    // As many keys, but another id: not the same (and no error).
    expect(sameKeys(a, [a[0]!, { ...a[1]!, id: 'z' }])).toBe(false);
    expect(sameKeys(a, [a[0]!, { ...a[1]!, expiresAt: 1 }])).toBe(false);
    expect(
      sameKeys(
        a,
        storedKeys(randomAclHashKey(), [
          { id: 'x', value: 'secret-value-000001' },
          { id: 'y', value: 'secret-value-000002', expiresAt: 1_800_000_000_000 },
        ]),
      ),
    ).toBe(false);
  });

  it('lists each referenced Secret once', () => {
    expect(referencedSecrets(acl())).toEqual(['s']);
  });

  it('gives a pattern to the oldest live StreamACL, then by name', () => {
    const owner = patternOwner([
      { metadata: { name: 'b', creationTimestamp: '2026-01-01T00:00:00Z' } },
      { metadata: { name: 'a', creationTimestamp: '2026-01-01T00:00:00Z' } },
      {
        metadata: {
          name: 'old',
          creationTimestamp: '2025-01-01T00:00:00Z',
          deletionTimestamp: '2026-02-01T00:00:00Z',
        },
      },
    ]);
    expect(owner?.metadata.name).toBe('a');
  });

  it('reports Synced with observedGeneration, and keeps the last sync data on failure', () => {
    const now = new Date('2026-11-25T10:00:00Z');
    const ok = streamAclStatus(acl(), { synced: true, keys: 3, wroteAt: now }, now);
    expect(ok).toMatchObject({
      observedGeneration: 3,
      syncedKeys: 3,
      lastSyncTime: '2026-11-25T10:00:00Z',
      conditions: [{ type: 'Synced', status: 'True', reason: 'Synced', observedGeneration: 3 }],
    });
    const failed = streamAclStatus(
      acl(ok),
      { synced: false, problem: { reason: 'RedisUnavailable', message: 'down' } },
      new Date('2026-11-25T10:05:00Z'),
    );
    expect(failed).toMatchObject({
      syncedKeys: 3,
      lastSyncTime: '2026-11-25T10:00:00Z',
      conditions: [
        {
          type: 'Synced',
          status: 'False',
          reason: 'RedisUnavailable',
          lastTransitionTime: '2026-11-25T10:05:00Z',
        },
      ],
    });
  });
});
