/**
 * MemoryAclStore: a standalone node's ACLs, in its process. It keeps the AclStore contract that
 * RedisAclStore keeps in Redis (test/acl/acl-store.test.ts), so that AclCache and StreamAccess
 * work the same on both: versions without gaps, change messages chained by id, an update that
 * validates before it writes.
 */
import { describe, expect, it } from '@jest/globals';
import {
  type AclChange,
  InvalidAclError,
  MemoryAclStore,
  type StoredKey,
  UNCHANGED,
} from '../../media-node/contract/acl.js';

const key = (id: string): StoredKey => ({ id, hash: 'a'.repeat(64) });
const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

function recording(store: MemoryAclStore): AclChange[] {
  const changes: AclChange[] = [];
  store.on('change', (change) => changes.push(change));
  return changes;
}

describe('MemoryAclStore (a standalone node’s ACLs)', () => {
  it('starts empty, connected, at version 0 of an epoch of its own that counts as synced', async () => {
    const store = new MemoryAclStore();
    await expect(store.connected()).resolves.toBeUndefined();
    const version = await store.version();
    expect(version).toEqual({
      epoch: expect.stringMatching(UUID),
      version: 0,
      syncedEpoch: version.epoch,
      head: '',
    });
    expect(await store.snapshot()).toEqual({ ...version, records: [], unreadable: [] });
    expect(await store.get('any')).toBeUndefined();
    // Another node's (or a restarted node's) memory is another store: another epoch.
    expect((await new MemoryAclStore().version()).epoch).not.toBe(version.epoch);
  });

  it('keeps its epoch: ensureEpoch() returns it, and only it can be marked synced', async () => {
    const store = new MemoryAclStore();
    const { epoch } = await store.version();
    expect(await store.ensureEpoch()).toBe(epoch);
    expect(await store.ensureEpoch()).toBe(epoch);
    expect(await store.markSynced(epoch)).toBe(true);
    expect(await store.markSynced('another-epoch')).toBe(false);
    expect((await store.version()).syncedEpoch).toBe(epoch);
  });

  it('writes a record (stamped with its owner, if any), counts the version and announces the change', async () => {
    const store = new MemoryAclStore();
    const changes = recording(store);
    const { epoch } = await store.version();
    const before = Date.now();
    const written = await store.update('paid', () => [key('k1')], { owner: 'uid-1' });
    const after = Date.now();
    expect(written).toEqual({
      v: 1,
      pattern: 'paid',
      keys: [key('k1')],
      updatedAt: expect.any(Number),
      owner: 'uid-1',
    });
    expect(written!.updatedAt).toBeGreaterThanOrEqual(before);
    expect(written!.updatedAt).toBeLessThanOrEqual(after);
    expect(await store.get('paid')).toEqual(written);
    const version = await store.version();
    expect(version).toEqual({ epoch, version: 1, syncedEpoch: epoch, head: expect.stringMatching(UUID) });
    expect(changes).toEqual([
      { version: 1, epoch, pattern: 'paid', op: 'put', at: expect.any(Number), id: version.head, prev: '' },
    ]);
    expect(changes[0]!.at).toBeGreaterThanOrEqual(before);
    expect(changes[0]!.at).toBeLessThanOrEqual(after);
    expect(await store.snapshot()).toEqual({ ...version, records: [written], unreadable: [] });

    const unowned = await store.update('free', () => [key('k2')]);
    expect(unowned).not.toHaveProperty('owner');
  });

  it('passes the current record to the change, and chains each change to the previous one', async () => {
    const store = new MemoryAclStore();
    const changes = recording(store);
    const seen: unknown[] = [];
    await store.update('s', (current) => {
      seen.push(current);
      return [key('k1')];
    });
    const first = await store.get('s');
    await store.update('s', (current) => {
      seen.push(current);
      return [...(current?.keys ?? []), key('k2')];
    });
    expect(seen).toEqual([undefined, first]);
    expect((await store.get('s'))?.keys).toEqual([key('k1'), key('k2')]);
    expect(changes.map((change) => change.version)).toEqual([1, 2]);
    expect(changes[1]!.prev).toBe(changes[0]!.id);
    expect(changes[1]!.id).not.toBe(changes[0]!.id);
    expect((await store.version()).head).toBe(changes[1]!.id);
  });

  it('deletes when the change returns undefined, and announces a delete of an absent ACL too', async () => {
    const store = new MemoryAclStore();
    const changes = recording(store);
    await store.update('s', () => [key('k1')]);
    expect(await store.update('s', () => undefined)).toBeUndefined();
    expect(await store.get('s')).toBeUndefined();
    // toHaveLength: toEqual would take a record left as undefined for none.
    expect((await store.snapshot()).records).toHaveLength(0);
    // As in Redis: edges that locked the pattern after a store reset unlock it on an explicit delete.
    await store.update('never', () => undefined);
    expect(changes.map(({ pattern, op, version }) => ({ pattern, op, version }))).toEqual([
      { pattern: 's', op: 'put', version: 1 },
      { pattern: 's', op: 'delete', version: 2 },
      { pattern: 'never', op: 'delete', version: 3 },
    ]);
  });

  it('leaves everything as it is when the change says UNCHANGED, and returns the current record', async () => {
    const store = new MemoryAclStore();
    const written = await store.update('s', () => [key('k1')]);
    const changes = recording(store);
    const before = await store.version();
    expect(await store.update('s', () => UNCHANGED)).toEqual(written);
    expect(await store.update('none', () => UNCHANGED)).toBeUndefined();
    expect(await store.version()).toEqual(before);
    expect(changes).toEqual([]);
  });

  it('refuses a record edges could not read, and writes and announces nothing', async () => {
    const store = new MemoryAclStore();
    await store.update('s', () => [key('k1')]);
    const changes = recording(store);
    const before = await store.version();
    await expect(store.update('s', () => [{ ...key('k2'), expiresAt: 0 }])).rejects.toBeInstanceOf(
      InvalidAclError,
    );
    await expect(store.update('s', () => [{ id: 'k2', hash: 'not-hex' }])).rejects.toThrow(
      /^ACL s: keys\.0\.hash: /,
    );
    expect((await store.get('s'))?.keys).toEqual([key('k1')]);
    expect(await store.version()).toEqual(before);
    expect(changes).toEqual([]);
  });

  it('closes without anything to clean up, and keeps answering', async () => {
    const store = new MemoryAclStore();
    await store.update('s', () => [key('k1')]);
    await expect(store.close()).resolves.toBeUndefined();
    expect((await store.get('s'))?.keys).toEqual([key('k1')]);
  });
});
