import {
  type RelayRecord,
  RelayRecordSchema,
  type StreamRecord,
  StreamRecordSchema,
} from '../../contract/redis.js';
import { TypedEmitter } from '../../contract/runtime.js';
import type { Logger } from '../logger.js';
import type { ClusterEvents } from './ClusterEvents.js';
import { ClusterRegistryError } from './errors.js';
import type { Lease } from './Lease.js';
import type { RecordReader } from './records.js';

/** A lease this node held and found taken by someone else (or unreadable) on a refresh. */
export type LeaseLost =
  | { kind: 'stream'; name: string; holder: StreamRecord | undefined }
  | { kind: 'relay'; region: string; name: string; holder: RelayRecord | undefined };

export type LeaseKeeperEvents = {
  /** Another holder owns a lease this node held: stop serving it here, never keep it silently. */
  leaselost: [lost: LeaseLost];
};

export interface HeldStream {
  lease: Lease;
  record: StreamRecord;
}

export interface HeldRelay {
  lease: Lease;
  record: RelayRecord;
}

/**
 * The leases this node holds — its stream claims and its regional relay leases — and their
 * refresh with every heartbeat: extended while ours, taken again (and re-announced) when they
 * expired and are free, reported lost when someone else took them. One owner for "what do we
 * hold".
 */
export class LeaseKeeper extends TypedEmitter<LeaseKeeperEvents> {
  readonly #streams = new Map<string, HeldStream>();
  /** By relay key (region and name). */
  readonly #relays = new Map<string, HeldRelay>();
  readonly #events: ClusterEvents;
  readonly #records: RecordReader;
  readonly #logger: Logger;

  constructor(events: ClusterEvents, records: RecordReader, logger: Logger) {
    super();
    this.#events = events;
    this.#records = records;
    this.#logger = logger;
  }

  get streamCount(): number {
    return this.#streams.size;
  }

  get relayCount(): number {
    return this.#relays.size;
  }

  stream(name: string): HeldStream | undefined {
    return this.#streams.get(name);
  }

  holdStream(held: HeldStream): void {
    this.#streams.set(held.record.name, held);
  }

  /** Stops holding `name` (before its release is sent: a heartbeat from now on will not refresh it). */
  dropStream(name: string): HeldStream | undefined {
    const held = this.#streams.get(name);
    this.#streams.delete(name);
    return held;
  }

  holdRelay(held: HeldRelay): void {
    this.#relays.set(held.lease.key, held);
  }

  dropRelay(key: string): HeldRelay | undefined {
    const held = this.#relays.get(key);
    this.#relays.delete(key);
    return held;
  }

  /** Everything held, forgotten at once (shutdown releases it). */
  dropAll(): { streams: HeldStream[]; relays: HeldRelay[] } {
    const held = { streams: [...this.#streams.values()], relays: [...this.#relays.values()] };
    this.#streams.clear();
    this.#relays.clear();
    return held;
  }

  /**
   * Refreshes every held lease. Every command is sent synchronously, in this call (ordering: a
   * release sent later on the same connection cannot be overtaken by a refresh sent now). The
   * promise resolves with the first failure (Redis), if any; losses are reported as events
   * unless `closing()` says the results no longer matter.
   */
  refreshAll(closing: () => boolean): Promise<ClusterRegistryError | undefined> {
    const refreshes = [
      ...[...this.#streams.values()].map((held) => ({
        lease: held.lease,
        outcome: held.lease.refresh(this.#events.up(held.record)),
        lose: (holder: string) => this.#loseStream(held, holder),
      })),
      ...[...this.#relays.values()].map((held) => ({
        lease: held.lease,
        outcome: held.lease.refresh(),
        lose: (holder: string) => this.#loseRelay(held, holder),
      })),
    ];
    return Promise.allSettled(refreshes.map((refresh) => refresh.outcome)).then((outcomes) => {
      let failure: ClusterRegistryError | undefined;
      outcomes.forEach((outcome, index) => {
        const refresh = refreshes[index]!;
        if (outcome.status === 'rejected') {
          failure ??= new ClusterRegistryError('heartbeat', refresh.lease.key, outcome.reason);
        } else if (closing()) {
          // close() has released everything: results of refreshes sent before it do not matter.
        } else if (!outcome.value.held) {
          refresh.lose(outcome.value.holder);
        } else if (outcome.value.reacquired) {
          this.#logger.info(
            { key: refresh.lease.key },
            'lease re-registered: it had expired (Redis restarted or heartbeats stalled) and was free',
          );
        }
      });
      return failure;
    });
  }

  #loseStream(held: HeldStream, holderValue: string): void {
    // Released (or re-claimed) while the refresh was in flight: that is not a loss.
    if (this.#streams.get(held.record.name) !== held) return;
    this.#streams.delete(held.record.name);
    const holder = this.#records.parse(StreamRecordSchema, holderValue, held.lease.key);
    this.#logger.warn(
      { stream: held.record.name, holder: holder?.nodeId, holderClaimId: holder?.claimId },
      'stream claim lost to another holder',
    );
    this.emit('leaselost', { kind: 'stream', name: held.record.name, holder });
  }

  #loseRelay(held: HeldRelay, holderValue: string): void {
    if (this.#relays.get(held.lease.key) !== held) return;
    this.#relays.delete(held.lease.key);
    const holder = this.#records.parse(RelayRecordSchema, holderValue, held.lease.key);
    const { region, name } = held.record;
    this.#logger.warn({ stream: name, region, holder: holder?.nodeId }, 'relay lease lost to another holder');
    this.emit('leaselost', { kind: 'relay', region, name, holder });
  }
}
