/**
 * AclCache against a scripted store: the test decides what the store holds (records, epoch,
 * version, head, unreadable records) and which change messages arrive, in which order — the
 * cases a real Redis produces only around failovers, resets and lost messages
 * (test/acl/acl-store.test.ts runs those on a real redis-server). What is checked is what the
 * cache answers (governing ACL, locks, version, freshness) and when it re-reads everything.
 */
import { afterEach, describe, expect, it } from '@jest/globals';
import {
  type AclChange,
  type AclRecord,
  type AclSnapshot,
  type AclStore,
  type AclStoreEvents,
  type AclStoreVersion,
  UnreadableAclError,
} from '../../media-node/contract/acl.js';
import { TypedEmitter } from '../../media-node/contract/runtime.js';
import { AclCache } from '../../media-node/src/acl/AclCache.js';
import { createLogger } from '../../media-node/src/logger.js';

const logger = createLogger('silent');
const HASH = 'a'.repeat(64);
const record = (pattern: string, id = 'k'): AclRecord => ({
  v: 1,
  pattern,
  keys: [{ id, hash: HASH }],
  updatedAt: 0,
});

/** A store whose state and messages the test scripts. */
class ScriptedStore extends TypedEmitter<AclStoreEvents> implements AclStore {
  epoch = 'epoch-1';
  versionNo = 0;
  syncedEpoch = 'epoch-1';
  head = '';
  readonly records = new Map<string, AclRecord>();
  readonly unreadable = new Set<string>();
  snapshots = 0;
  reads = 0;
  /** What get() and version() throw instead of answering. */
  failing: Error | undefined;
  /** Holds snapshot() answers until resolved (a slow full read). */
  snapshotGate: Promise<void> | undefined;
  /** Holds get() answers until resolved (a slow read of one record). */
  getGate: Promise<void> | undefined;

  async connected(): Promise<void> {}
  async get(pattern: string): Promise<AclRecord | undefined> {
    this.reads++;
    if (this.failing) throw this.failing;
    if (this.unreadable.has(pattern)) throw new UnreadableAclError(pattern, 'record version 9');
    // What the store held when asked; the answer may arrive after later writes (a slow read).
    const value = this.records.get(pattern);
    await this.getGate;
    return value;
  }
  async snapshot(): Promise<AclSnapshot> {
    this.snapshots++;
    if (this.failing) throw this.failing;
    const state = {
      ...this.#version(),
      records: [...this.records.values()],
      unreadable: [...this.unreadable],
    };
    await this.snapshotGate;
    return state;
  }
  async version(): Promise<AclStoreVersion> {
    if (this.failing) throw this.failing;
    return this.#version();
  }
  #version(): AclStoreVersion {
    return { epoch: this.epoch, version: this.versionNo, syncedEpoch: this.syncedEpoch, head: this.head };
  }
  async ensureEpoch(): Promise<string> {
    return this.epoch;
  }
  async markSynced(): Promise<boolean> {
    return true;
  }
  async update(): Promise<undefined> {
    throw new Error('not used');
  }
  async close(): Promise<void> {}

  /** A change message, as pub/sub delivers it (again, late, or of a write made elsewhere). */
  deliver(change: AclChange): void {
    this.emit('change', change);
  }

  /**
   * A write as the store makes it: state changed, then its message (unless `silent`: lost).
   * `legacy`: by a writer of an older version, whose messages carry no id and no prev.
   */
  write(
    pattern: string,
    value: AclRecord | undefined,
    options: { silent?: boolean; at?: number; legacy?: boolean } = {},
  ) {
    if (value) this.records.set(pattern, value);
    else this.records.delete(pattern);
    this.unreadable.delete(pattern);
    this.versionNo++;
    const prev = this.head;
    this.head = options.legacy ? '' : `id-${this.versionNo}-${Math.random().toString(36).slice(2, 8)}`;
    const change: AclChange = {
      version: this.versionNo,
      epoch: this.epoch,
      pattern,
      op: value ? 'put' : 'delete',
      at: options.at ?? Date.now(),
      ...(options.legacy ? {} : { id: this.head, prev }),
    };
    if (!options.silent) this.emit('change', change);
    return change;
  }
}

const caches: AclCache[] = [];
afterEach(() => {
  for (const cache of caches.splice(0)) cache.close();
});

async function started(store: ScriptedStore, checkIntervalMs = 600_000) {
  const cache = new AclCache({ store, checkIntervalMs, logger });
  caches.push(cache);
  const changed: { patterns: string[]; at: number | undefined }[] = [];
  const resets: string[][] = [];
  await cache.start();
  cache.on('changed', (patterns, at) => changed.push({ patterns: [...patterns].sort(), at }));
  cache.on('reset', (locked) => resets.push([...locked].sort()));
  return { cache, changed, resets };
}

/** A promise the test resolves when it wants (a store's slow answer). */
const gate = () => {
  let open = () => {};
  const closed = new Promise<void>((resolve) => {
    open = resolve;
  });
  return { closed, open };
};

/** Lets queued change handling (a few promise turns, no timers) run. */
const settle = async (rounds = 20) => {
  for (let i = 0; i < rounds; i++) await new Promise((resolve) => setImmediate(resolve));
};
const until = async (condition: () => boolean, what: string) => {
  const deadline = Date.now() + 5000;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
};

describe('AclCache: loading and looking up', () => {
  it('knows nothing before it has loaded', () => {
    const cache = new AclCache({ store: new ScriptedStore(), checkIntervalMs: 600_000, logger });
    caches.push(cache);
    expect([cache.version, cache.confirmedAt, cache.storeSynced, cache.size]).toEqual([
      -1,
      undefined,
      false,
      0,
    ]);
  });

  it('loads every ACL: the exact name governs, then the longest prefix; * alone covers everything', async () => {
    const store = new ScriptedStore();
    for (const pattern of ['sales-1', 'sales-*', 'sales-eu-*', '*'])
      store.write(pattern, record(pattern), { silent: true });
    const before = Date.now();
    const cache = new AclCache({ store, checkIntervalMs: 600_000, logger });
    caches.push(cache);
    const resets: unknown[] = [];
    cache.on('reset', (locked) => resets.push(locked));
    await cache.start();
    expect(resets).toEqual([]); // a first load is no reset
    expect(cache.version).toBe(4);
    expect(cache.size).toBe(4);
    expect(cache.confirmedAt).toBeGreaterThanOrEqual(before);
    expect(cache.governing('sales-1')?.pattern).toBe('sales-1');
    expect(cache.governing('sales-2')?.pattern).toBe('sales-*');
    expect(cache.governing('sales-eu-1')?.pattern).toBe('sales-eu-*');
    expect(cache.governing('news')?.pattern).toBe('*');
    expect(cache.lockOf('sales-1')).toBeUndefined();
    expect(cache.lockedPatterns).toEqual(new Set());
  });

  it('is synced only when the writer has marked the store’s current epoch', async () => {
    const store = new ScriptedStore();
    store.syncedEpoch = '';
    const { cache } = await started(store);
    expect(cache.storeSynced).toBe(false);
    store.syncedEpoch = 'epoch-0';
    store.write('a', record('a'));
    await settle();
    expect(cache.storeSynced).toBe(false);
    const empty = new ScriptedStore();
    empty.epoch = '';
    empty.syncedEpoch = '';
    expect((await started(empty)).cache.storeSynced).toBe(false);
  });
});

describe('AclCache: change messages', () => {
  it('applies each change from the store’s record, with the time it was made, without re-reading everything', async () => {
    const store = new ScriptedStore();
    store.write('sales-*', record('sales-*'), { silent: true });
    const { cache, changed } = await started(store);
    store.write('sales-1', record('sales-1'), { at: 1234 });
    store.write('sales-*', undefined, { at: 1235 });
    await until(() => cache.version === 3, 'both changes');
    expect(changed).toEqual([
      { patterns: ['sales-1'], at: 1234 },
      { patterns: ['sales-*'], at: 1235 },
    ]);
    expect(cache.governing('sales-1')?.pattern).toBe('sales-1');
    expect(cache.governing('sales-2')).toBeUndefined();
    expect(cache.size).toBe(1);
    expect(store.snapshots).toBe(1);
  });

  it('ignores a message it already has (same version and id), re-reads for one with its version but another id', async () => {
    const store = new ScriptedStore();
    const { cache } = await started(store);
    const change = store.write('a', record('a'));
    await until(() => cache.version === 1, 'the change');
    store.deliver(change); // delivered twice
    await settle();
    expect(store.snapshots).toBe(1);
    // A failover lost our write; another write got the same version number.
    store.records.set('b', record('b'));
    store.records.delete('a');
    store.head = 'another-id';
    store.deliver({ ...change, pattern: 'b', id: 'another-id' });
    await until(() => store.snapshots === 2, 'a re-read');
    await until(() => cache.governing('b') !== undefined, 'the store’s state');
    expect(cache.governing('a')).toBeUndefined();
  });

  it('an older message with another id makes it compare with the store, and re-read only if they differ', async () => {
    const store = new ScriptedStore();
    const { cache } = await started(store);
    const first = store.write('a', record('a'));
    store.write('b', record('b'));
    await until(() => cache.version === 2, 'the changes');
    store.deliver({ ...first, id: 'unknown' }); // late, from before a failover
    await settle();
    expect(store.snapshots).toBe(1); // the store is where the cache is
    store.write('c', record('c'), { silent: true });
    store.deliver({ ...first, id: 'unknown' });
    await until(() => store.snapshots === 2, 'a re-read');
    await until(() => cache.version === 3, 'the lost write');
  });

  it('re-reads everything after a gap, or a change made on top of a write it never saw', async () => {
    const store = new ScriptedStore();
    const { cache, changed, resets } = await started(store);
    store.write('lost', record('lost'), { silent: true });
    store.write('a', record('a'));
    await until(() => cache.version === 2, 'the re-read');
    expect(store.snapshots).toBe(2);
    expect(resets).toEqual([]); // same epoch: nothing was lost
    expect(cache.governing('lost')?.pattern).toBe('lost');
    expect(changed.at(-1)).toEqual({ patterns: ['a', 'lost'], at: undefined });

    // Version + 1, but on top of another write than ours (the history forked).
    store.records.set('forked', record('forked'));
    store.versionNo = 3;
    store.head = 'fork-head';
    store.deliver({
      version: 3,
      epoch: store.epoch,
      pattern: 'forked',
      op: 'put',
      at: Date.now(),
      id: 'fork-head',
      prev: 'not-our-head',
    });
    await until(() => store.snapshots === 3, 'a re-read');
    await until(() => cache.governing('forked') !== undefined, 'the forked write');
  });

  it('applies the messages of an older writer (no id, no prev) one by one, and ignores their duplicates', async () => {
    const store = new ScriptedStore();
    store.write('a', record('a'), { silent: true });
    const { cache } = await started(store);
    store.write('b', record('b'), { legacy: true });
    const last = store.write('c', record('c'), { legacy: true });
    await until(() => cache.version === 3, 'the changes');
    store.deliver(last);
    await settle();
    expect(cache.governing('c')?.pattern).toBe('c');
    expect(store.snapshots).toBe(1);
  });

  it('adopts the epoch of the first write to an empty store', async () => {
    const store = new ScriptedStore();
    store.epoch = '';
    const { cache } = await started(store);
    store.epoch = 'new-epoch';
    store.write('a', record('a'));
    await until(() => cache.version === 1, 'the first write');
    expect(store.snapshots).toBe(1);
    expect(cache.governing('a')?.pattern).toBe('a');
    expect(cache.lockedPatterns).toEqual(new Set());
  });

  it('re-reads when a change it is reading is overtaken by a full read', async () => {
    const store = new ScriptedStore();
    const { cache } = await started(store);
    const slow = gate();
    store.snapshotGate = slow.closed;
    // A gap starts a full read that is slow; the next message arrives meanwhile.
    store.write('lost', record('lost'), { silent: true });
    store.write('a', record('a'));
    store.write('b', record('b')); // in the full read: skipped once it is in
    await until(() => store.snapshots === 2, 'the full read');
    store.write('c', record('c')); // after it: applied once it is in
    await settle();
    slow.open();
    store.snapshotGate = undefined;
    await until(() => cache.version === 4, 'all writes');
    expect(cache.governing('b')?.pattern).toBe('b');
    expect(cache.governing('c')?.pattern).toBe('c');
    expect(store.snapshots).toBe(2);
  });

  it('re-reads everything when a changed record cannot be read for another reason than its content', async () => {
    const store = new ScriptedStore();
    const { cache } = await started(store);
    store.failing = new Error('connection reset');
    store.write('a', record('a'));
    await until(() => store.snapshots === 2, 'a re-read attempt');
    expect(cache.version).toBe(0);
    store.failing = undefined;
    store.write('b', record('b'));
    await until(() => cache.version === 2, 'the catch-up');
    expect(cache.governing('a')?.pattern).toBe('a');
  });

  it('handles nothing after close()', async () => {
    const store = new ScriptedStore();
    const { cache } = await started(store);
    cache.close();
    store.write('a', record('a'));
    await settle();
    expect([cache.version, store.reads]).toEqual([0, 0]);
  });
});

describe('AclCache: what it cannot read', () => {
  it('locks a pattern whose stored record cannot be read, and unlocks it when it can', async () => {
    const store = new ScriptedStore();
    store.unreadable.add('broken');
    store.write('fine', record('fine'), { silent: true });
    const { cache } = await started(store);
    expect(cache.lockOf('broken')).toBe('unreadable');
    expect(cache.isLocked('fine')).toBe(false);
    // A change to a record that cannot be read.
    const change = store.write('other', record('other'), { silent: true });
    store.unreadable.add('other');
    store.deliver(change);
    await until(() => cache.version === 2, 'the change');
    expect(cache.lockOf('other')).toBe('unreadable');
    store.write('other', record('other'));
    await until(() => cache.version === 3, 'the repair');
    expect(cache.lockOf('other')).toBeUndefined();
    // Gone from the unreadable ones on a full read (deleted meanwhile): unlocked too.
    store.unreadable.delete('broken');
    store.write('lost', record('lost'), { silent: true });
    store.write('x', record('x'));
    await until(() => cache.version === 5, 'the re-read');
    expect(cache.lockOf('broken')).toBeUndefined();
    expect(cache.lockedPatterns).toEqual(new Set());
  });

  it('locks what it knew when the store lost its data, until each ACL is written again or deleted', async () => {
    const store = new ScriptedStore();
    for (const pattern of ['paid', 'sales-*', 'kept'])
      store.write(pattern, record(pattern), { silent: true });
    const { cache, resets, changed } = await started(store);
    // Redis restarted empty: a new epoch, and the writer rewrites only `kept` so far.
    store.epoch = 'epoch-2';
    store.records.clear();
    store.versionNo = 0;
    store.head = '';
    store.write('kept', record('kept'));
    await until(() => resets.length === 1, 'the reset');
    expect(resets).toEqual([['paid', 'sales-*']]);
    expect(changed.at(-1)).toEqual({ patterns: ['kept', 'paid', 'sales-*'], at: undefined });
    expect(cache.lockOf('paid')).toBe('reset');
    expect(cache.lockOf('sales-1')).toBe('reset');
    expect(cache.lockOf('kept')).toBeUndefined();
    expect(cache.lockOf('news')).toBeUndefined();
    // A more specific ACL written since governs its streams: not locked.
    store.write('sales-eu-*', record('sales-eu-*'));
    store.write('sales-2', record('sales-2'));
    await until(() => cache.version === 3, 'the writes');
    expect(cache.lockOf('sales-eu-1')).toBeUndefined();
    expect(cache.lockOf('sales-2')).toBeUndefined();
    expect(cache.lockOf('sales-1')).toBe('reset');
    // A full read (after a lost message) unlocks what it finds, and keeps the rest locked.
    store.write('sales-*', record('sales-*'), { silent: true });
    store.write('unrelated', record('unrelated'));
    await until(() => cache.version === 5, 'the re-read');
    expect(cache.lockOf('sales-1')).toBeUndefined();
    expect(cache.lockOf('paid')).toBe('reset');
    // Deleted explicitly: unlocked.
    store.write('paid', undefined);
    await until(() => cache.version === 6, 'the delete');
    expect(cache.lockedPatterns).toEqual(new Set());
  });

  it('locks every stream when the lost ACL was *', async () => {
    const store = new ScriptedStore();
    store.write('*', record('*'), { silent: true });
    const { cache, resets } = await started(store);
    store.epoch = 'epoch-2';
    store.records.clear();
    store.versionNo = 0;
    store.head = '';
    store.write('other', record('other'));
    await until(() => resets.length === 1, 'the reset');
    expect(cache.lockOf('anything')).toBe('reset');
    expect(cache.lockOf('other')).toBeUndefined();
  });

  it('does not take the first data of a store it found empty for a reset', async () => {
    const store = new ScriptedStore();
    store.epoch = '';
    store.syncedEpoch = '';
    const { cache, resets } = await started(store, 20);
    store.epoch = 'first-epoch';
    store.write('a', record('a'), { silent: true }); // its message lost: the check finds it
    await until(() => cache.governing('a') !== undefined, 'the first write');
    expect(resets).toEqual([]);
    expect(cache.lockedPatterns).toEqual(new Set());
  });

  it('keeps a pattern locked through a second reset, and locks by the exact name before a prefix', async () => {
    const store = new ScriptedStore();
    for (const pattern of ['show', 'sh*']) store.write(pattern, record(pattern), { silent: true });
    const { cache, resets } = await started(store);
    for (const epoch of ['epoch-2', 'epoch-3']) {
      store.epoch = epoch;
      store.records.clear();
      store.versionNo = 0;
      store.head = '';
      store.write('other', record('other'));
      await until(() => resets.length === Number(epoch.at(-1)) - 1, `reset to ${epoch}`);
    }
    expect(resets.at(-1)).toEqual(['sh*', 'show']);
    expect(cache.lockOf('show')).toBe('reset');
    expect(cache.lockOf('shop')).toBe('reset');
  });
});

describe('AclCache: the periodic check', () => {
  it('catches a lost last message and a write it missed behind the same version, and confirms freshness', async () => {
    const store = new ScriptedStore();
    const { cache } = await started(store, 20);
    store.write('a', record('a'), { silent: true });
    await until(() => cache.governing('a') !== undefined, 'the lost write');
    // Same version, another head: a failover handed our version to another write.
    store.records.set('b', record('b'));
    store.head = 'another-head';
    await until(() => cache.governing('b') !== undefined, 'the other write');
    const confirmed = cache.confirmedAt ?? 0;
    await until(() => (cache.confirmedAt ?? 0) > confirmed, 'a confirmation');
    expect(cache.version).toBe(1);
  });

  it('applies a change that arrives while its full read is in flight once that read is in, from the message', async () => {
    const store = new ScriptedStore();
    const { cache, changed } = await started(store, 20);
    const slow = gate();
    store.snapshotGate = slow.closed;
    store.write('lost', record('lost'), { silent: true });
    await until(() => store.snapshots === 2, 'the check’s full read');
    // Made after the read took its state: the read will not have it.
    const change = store.write('a', record('a'), { at: 1234 });
    await settle();
    store.snapshotGate = undefined;
    slow.open();
    await until(() => cache.version === 2, 'the change');
    expect(cache.governing('a')?.pattern).toBe('a');
    // Applied from its message (with the time it was made), not left to the next check.
    expect(changed).toContainEqual({ patterns: ['a'], at: change.at });
    expect(store.snapshots).toBe(2);
  });

  it('does not let a slow read of a changed record undo a newer full read that overtook it', async () => {
    const store = new ScriptedStore();
    const { cache, changed } = await started(store, 20);
    const slow = gate();
    store.getGate = slow.closed;
    const first = store.write('a', record('a', 'k1'), { at: 1111 }); // its read is slow
    await until(() => store.reads === 1, 'the read of the changed record');
    store.write('a', record('a', 'k2'), { silent: true });
    await until(() => cache.version === 2, 'the check’s full read');
    expect(cache.governing('a')?.keys[0]?.id).toBe('k2');
    slow.open();
    await settle();
    expect(cache.version).toBe(2);
    expect(cache.governing('a')?.keys[0]?.id).toBe('k2');
    expect(changed.filter((event) => event.at === first.at)).toEqual([]);
  });

  it('does not take a store without a head (written by an older version) for a fork', async () => {
    const store = new ScriptedStore();
    store.write('a', record('a'), { silent: true });
    const { cache } = await started(store, 20);
    store.head = '';
    const confirmed = cache.confirmedAt ?? 0;
    await until(() => (cache.confirmedAt ?? 0) > confirmed, 'a confirmation');
    expect(store.snapshots).toBe(1);
  });

  it('learns that the writer has synced the store without any change to an ACL', async () => {
    const store = new ScriptedStore();
    store.syncedEpoch = '';
    const { cache } = await started(store, 20);
    expect(cache.storeSynced).toBe(false);
    store.syncedEpoch = store.epoch;
    await until(() => cache.storeSynced, 'synced');
  });

  it('stops confirming while the store cannot answer, and stops checking on close()', async () => {
    const store = new ScriptedStore();
    const { cache } = await started(store, 20);
    store.failing = new Error('down');
    await new Promise((resolve) => setTimeout(resolve, 60));
    const stale = cache.confirmedAt;
    await new Promise((resolve) => setTimeout(resolve, 100));
    expect(cache.confirmedAt).toBe(stale);
    store.failing = undefined;
    await until(() => (cache.confirmedAt ?? 0) > (stale ?? 0), 'a confirmation');
    cache.close();
    store.write('a', record('a'), { silent: true });
    await new Promise((resolve) => setTimeout(resolve, 100));
    expect(cache.governing('a')).toBeUndefined();
  });
});
