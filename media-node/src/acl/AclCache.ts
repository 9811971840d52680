import type { AclRecord } from '../../contract/acl.js';
import { type AclChange, type AclStore, UnreadableAclError } from '../../contract/acl.js';
import { TypedEmitter } from '../../contract/runtime.js';
import type { Logger } from '../logger.js';

export type AclCacheEvents = {
  /**
   * ACLs changed: `patterns` were put or deleted (all of them after a resync). `at` is when the
   * change was made (writer's clock), for the revocation latency metric; undefined on resync.
   */
  changed: [patterns: ReadonlySet<string>, at: number | undefined];
  /** The store lost its data (new epoch): `locked` patterns refuse new viewers until rewritten. */
  reset: [locked: ReadonlySet<string>];
};

/**
 * Why a pattern refuses new viewers although it has no readable ACL: its ACL was lost in a
 * store reset, or the stored record cannot be read (invalid, or from a newer version).
 */
export type LockReason = 'reset' | 'unreadable';

export interface AclCacheOptions {
  store: AclStore;
  /** How often the store's version is compared with ours (catches lost messages). */
  checkIntervalMs?: number;
  logger: Logger;
}

/**
 * Every ACL, in memory, kept current by the store's change messages: admission never waits on
 * Redis. Messages carry the ACL version; one that is not our version + 1 means we missed
 * something, and we re-read everything. A periodic version check catches a lost last message,
 * and doubles as the freshness signal: `confirmedAt` is when we last knew we were current.
 *
 * Versions alone are not enough behind a Redis failover: a replica promoted without the last
 * writes hands their version numbers out again for other changes. Every write also has a random
 * id and names the one before it (the store's head): a change is applied only on top of the
 * write we last saw, and the periodic check compares heads too — so the cache re-reads instead
 * of skipping a write whose version it thinks it has (no write lost, none applied out of order).
 *
 * What the cache cannot read is never taken for absent (absent means public under the allow
 * policy): a lost or unreadable ACL locks its pattern until it is written again or deleted.
 */
export class AclCache extends TypedEmitter<AclCacheEvents> {
  readonly #store: AclStore;
  readonly #logger: Logger;
  readonly #exact = new Map<string, AclRecord>();
  /** Prefix patterns by their prefix ("sales-" for "sales-*"). */
  readonly #prefixes = new Map<string, AclRecord>();
  /**
   * Patterns refusing new viewers (503) until their ACL is written again (the operator
   * re-syncs StreamACLs; a backend re-PUTs) or explicitly deleted.
   */
  readonly #locked = new Map<string, LockReason>();
  readonly #checkTimer: NodeJS.Timeout;
  #epoch: string | undefined;
  #syncedEpoch = '';
  #version = -1;
  /** Id of the last write we have ('' unknown: written by an older version, or never loaded). */
  #head = '';
  #confirmedAt: number | undefined;
  #resyncing: Promise<void> | undefined;
  /** The change being handled, and those queued behind it (#onChange never rejects). */
  #changes: Promise<void> = Promise.resolve();
  #closed = false;

  constructor(options: AclCacheOptions) {
    super();
    this.#store = options.store;
    this.#logger = options.logger.child({ component: 'acl-cache' });
    // One change at a time, in the order they came: a message handled while the one before it
    // is still reading its record would look like a gap (version + 2) and re-read everything.
    this.#store.on('change', (change) => {
      this.#changes = this.#changes.then(() => this.#onChange(change));
    });
    this.#checkTimer = setInterval(() => void this.#check(), options.checkIntervalMs ?? 2000);
    this.#checkTimer.unref();
  }

  /** First full read; retried by the periodic check if the store is unreachable now. */
  async start(): Promise<void> {
    await this.#store.connected(5000);
    await this.#resync().catch((error: Error) =>
      this.#logger.warn({ err: error }, 'cannot load ACLs yet; retrying in the background'),
    );
  }

  get version(): number {
    return this.#version;
  }

  /** When the cache was last known to match the store (undefined: never loaded). */
  get confirmedAt(): number | undefined {
    return this.#confirmedAt;
  }

  /**
   * Whether the writer of an operator-managed store has written every ACL for the store's
   * current data (its epoch). Before that, an ACL missing here may simply not be rewritten yet.
   */
  get storeSynced(): boolean {
    return this.#epoch !== undefined && this.#epoch !== '' && this.#syncedEpoch === this.#epoch;
  }

  get size(): number {
    return this.#exact.size + this.#prefixes.size;
  }

  /**
   * Why new viewers of `stream` are refused although no readable ACL says so: the most specific
   * pattern covering it was lost in a store reset or cannot be read. Undefined: not locked.
   */
  lockOf(stream: string): LockReason | undefined {
    if (this.#locked.size === 0 || this.#exact.has(stream)) return undefined;
    const exact = this.#locked.get(stream);
    if (exact) return exact;
    for (let length = stream.length; length >= 0; length--) {
      const prefix = stream.slice(0, length);
      if (this.#prefixes.has(prefix)) return undefined;
      const locked = this.#locked.get(`${prefix}*`);
      if (locked) return locked;
    }
    return undefined;
  }

  isLocked(stream: string): boolean {
    return this.lockOf(stream) !== undefined;
  }

  get lockedPatterns(): ReadonlySet<string> {
    return new Set(this.#locked.keys());
  }

  /** The ACL that governs `stream`: exact name first, then the longest matching prefix. */
  governing(stream: string): AclRecord | undefined {
    const exact = this.#exact.get(stream);
    if (exact) return exact;
    for (let length = stream.length; length >= 0; length--) {
      const record = this.#prefixes.get(stream.slice(0, length));
      if (record) return record;
    }
    return undefined;
  }

  #put(record: AclRecord): void {
    if (record.pattern.endsWith('*')) this.#prefixes.set(record.pattern.slice(0, -1), record);
    else this.#exact.set(record.pattern, record);
  }

  #delete(pattern: string): void {
    if (pattern.endsWith('*')) this.#prefixes.delete(pattern.slice(0, -1));
    else this.#exact.delete(pattern);
  }

  async #onChange(change: AclChange): Promise<void> {
    if (this.#closed) return;
    if (change.epoch !== this.#epoch) {
      // First write to an empty store (adopt its epoch), or the store was reset: re-read.
      if (!this.#epoch) this.#epoch = change.epoch;
      else {
        await this.#resync().catch((error: Error) => this.#logger.warn({ err: error }, 'ACL resync failed'));
        return;
      }
    }
    if (change.version <= this.#version) {
      // Usually a change the last snapshot already had. One with our version but another id is
      // a write made after a failover lost ours (or a later one): compare with the store.
      if (change.id && this.#head && !(change.version === this.#version && change.id === this.#head)) {
        if (change.version === this.#version) await this.#resyncLogged();
        else void this.#check();
      }
      return;
    }
    if (this.#resyncing) {
      // The snapshot in flight may predate this change: look again once it is in.
      await this.#resyncing.catch(() => undefined);
      if (change.version <= this.#version) return;
    }
    if (
      change.version !== this.#version + 1 ||
      (change.prev !== undefined && this.#head && change.prev !== this.#head)
    ) {
      // A gap (we missed messages), or a change on top of a write we never saw (the store's
      // history forked in a failover): the snapshot is the truth.
      await this.#resyncLogged();
      return;
    }
    try {
      // Read the record itself: the message says what changed, the store says what it is now.
      let record: AclRecord | undefined;
      let unreadable = false;
      try {
        record = await this.#store.get(change.pattern);
      } catch (error) {
        if (!(error instanceof UnreadableAclError)) throw error;
        unreadable = true;
      }
      if (change.version !== this.#version + 1) return; // a resync overtook us
      this.#delete(change.pattern);
      this.#locked.delete(change.pattern);
      if (record) this.#put(record);
      else if (unreadable) this.#locked.set(change.pattern, 'unreadable');
      this.#version = change.version;
      this.#head = change.id ?? '';
      this.#confirmedAt = Date.now();
      this.emit('changed', new Set([change.pattern]), change.at);
    } catch (error) {
      this.#logger.warn({ err: error, pattern: change.pattern }, 'cannot read changed ACL; resyncing');
      await this.#resync().catch(() => undefined);
    }
  }

  async #check(): Promise<void> {
    if (this.#closed || this.#resyncing) return;
    try {
      const version = await this.#store.version();
      if (
        version.version !== this.#version ||
        version.epoch !== this.#epoch ||
        (version.head !== '' && this.#head !== '' && version.head !== this.#head)
      )
        await this.#resync();
      else {
        this.#syncedEpoch = version.syncedEpoch;
        this.#confirmedAt = Date.now();
      }
    } catch (error) {
      this.#logger.debug({ err: error }, 'ACL version check failed (store unreachable?)');
    }
  }

  #resyncLogged(): Promise<void> {
    return this.#resync().catch((error: Error) => this.#logger.warn({ err: error }, 'ACL resync failed'));
  }

  #resync(): Promise<void> {
    this.#resyncing ??= (async () => {
      try {
        const snapshot = await this.#store.snapshot();
        if (
          this.#epoch !== undefined &&
          snapshot.epoch === this.#epoch &&
          (snapshot.version < this.#version ||
            (snapshot.version === this.#version &&
              snapshot.head !== '' &&
              this.#head !== '' &&
              snapshot.head !== this.#head))
        ) {
          // Not an outage: the store itself went back (a Redis failover to a replica that had
          // not got the last writes — writes whose callers were told they failed, if they waited
          // for replicas). The store is the truth; every session is checked against it again.
          this.#logger.error(
            { from: this.#version, to: snapshot.version, epoch: snapshot.epoch },
            'the ACL store went back to an earlier state (a Redis failover lost writes): following it',
          );
        }
        const present = new Set(snapshot.records.map((record) => record.pattern));
        const known = [...this.#exact.values(), ...this.#prefixes.values()].map((record) => record.pattern);
        const changed = new Set<string>([...known, ...present, ...snapshot.unreadable]);
        if (this.#epoch !== undefined && this.#epoch !== '' && snapshot.epoch !== this.#epoch) {
          for (const pattern of [...known, ...this.#locked.keys()])
            if (!present.has(pattern)) this.#locked.set(pattern, 'reset');
          this.#logger.error(
            { locked: [...this.#locked.keys()], from: this.#epoch, to: snapshot.epoch || '(empty)' },
            'the ACL store lost its data (Redis restarted without persistence?): streams it protected stay locked until their ACLs are written again',
          );
          this.emit('reset', this.lockedPatterns);
        }
        // Readable now: unlocked. Unreadable now: locked, whatever they were.
        for (const [pattern, reason] of [...this.#locked]) {
          if (present.has(pattern) || (reason === 'unreadable' && !snapshot.unreadable.includes(pattern)))
            this.#locked.delete(pattern);
        }
        for (const pattern of snapshot.unreadable) this.#locked.set(pattern, 'unreadable');
        if (snapshot.unreadable.length > 0) {
          this.#logger.error(
            { patterns: snapshot.unreadable },
            'stored ACLs cannot be read (invalid, or written by a newer version): their streams are refused until the ACLs are written again',
          );
        }
        this.#epoch = snapshot.epoch;
        this.#syncedEpoch = snapshot.syncedEpoch;
        this.#head = snapshot.head;
        this.#exact.clear();
        this.#prefixes.clear();
        for (const record of snapshot.records) this.#put(record);
        const previous = this.#version;
        this.#version = snapshot.version;
        this.#confirmedAt = Date.now();
        if (previous >= 0) this.#logger.info({ from: previous, to: snapshot.version }, 'ACLs resynchronised');
        this.emit('changed', changed, undefined);
      } finally {
        this.#resyncing = undefined;
      }
    })();
    return this.#resyncing;
  }

  close(): void {
    this.#closed = true;
    clearInterval(this.#checkTimer);
  }
}
