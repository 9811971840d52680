/**
 * Leader election over a coordination.k8s.io/v1 Lease, with client-go's algorithm (the
 * library has none):
 *
 * - Every candidate polls the Lease every `retryPeriodMs` (jittered). It may take the Lease
 *   when it has no holder, or when the holder has not renewed it for `leaseDurationSeconds` as
 *   seen on the candidate's own clock (the time it last saw the record change), so clock skew
 *   between machines does not matter.
 * - Every write is a PUT carrying the resourceVersion that was read: of two candidates racing
 *   for the same expired Lease, one gets 409 Conflict and stays a follower.
 * - The leader renews every `retryPeriodMs`. If it could not renew for `renewDeadlineMs`
 *   (< lease duration), it considers leadership lost and stops its controllers before anyone
 *   else can take the Lease.
 * - On shutdown the leader releases the Lease (empty holder), so a successor takes over at
 *   its next poll instead of after a full lease duration.
 */

import type { KubeClient } from '../kube/client.js';
import { describeError, isAlreadyExists, isConflict } from '../kube/errors.js';
import { type LeaseObject, LeaseSchema } from '../kube/objects.js';
import { LEASE_TYPE } from '../kube/resources.js';
import type { Logger } from '../logger.js';
import { jittered, sleep } from './backoff.js';

export interface LeaderElectorOptions {
  client: KubeClient;
  namespace: string;
  /** Name of the Lease. */
  name: string;
  /** This candidate's identity (the pod name), written as holderIdentity. */
  identity: string;
  logger: Logger;
  /** How long a Lease stays valid after its last renewal. Default 15 s. */
  leaseDurationMs?: number;
  /** The leader gives up if it could not renew for this long. Default 10 s. */
  renewDeadlineMs?: number;
  /** Poll / renew period. Default 2 s. */
  retryPeriodMs?: number;
  /** For tests. */
  now?: () => number;
}

export interface LeadershipCallbacks {
  /**
   * This candidate became the leader. `term` aborts when leadership ends (lost or released);
   * the returned promise must settle once the work started here has stopped.
   */
  onStartedLeading(term: AbortSignal): Promise<void>;
  /** Someone (maybe this candidate) holds the lease now; called on every change of holder. */
  onNewLeader?(identity: string): void;
}

/** Lease times are MicroTime: RFC 3339 with exactly six fractional digits. */
export const microTime = (ms: number): string => new Date(ms).toISOString().replace(/Z$/, '000Z');

export class LeaderElector {
  readonly identity: string;
  readonly #client: KubeClient;
  readonly #namespace: string;
  readonly #name: string;
  readonly #logger: Logger;
  readonly #leaseDurationMs: number;
  readonly #renewDeadlineMs: number;
  readonly #retryPeriodMs: number;
  readonly #now: () => number;
  /** The last record seen and when (local clock) it was first seen in that version. */
  #observed: { lease: LeaseObject; at: number } | undefined;
  #leading = false;
  #lastHolder: string | undefined;

  constructor(options: LeaderElectorOptions) {
    this.#client = options.client;
    this.#namespace = options.namespace;
    this.#name = options.name;
    this.identity = options.identity;
    this.#logger = options.logger.child({
      component: 'leader-election',
      lease: `${options.namespace}/${options.name}`,
    });
    this.#leaseDurationMs = options.leaseDurationMs ?? 15_000;
    this.#renewDeadlineMs = options.renewDeadlineMs ?? 10_000;
    this.#retryPeriodMs = options.retryPeriodMs ?? 2_000;
    this.#now = options.now ?? Date.now;
    if (this.#renewDeadlineMs >= this.#leaseDurationMs) {
      throw new RangeError('renewDeadlineMs must be shorter than leaseDurationMs');
    }
    if (this.#retryPeriodMs >= this.#renewDeadlineMs) {
      throw new RangeError('retryPeriodMs must be shorter than renewDeadlineMs');
    }
  }

  get isLeader(): boolean {
    return this.#leading;
  }

  /**
   * Campaigns until `signal` aborts: acquires the Lease, runs `onStartedLeading` while it is
   * held, and campaigns again after losing it. On abort, stops the term and releases the Lease.
   * If the leader's work ends on its own (a bug), the Lease is released and run() rejects:
   * holding the Lease without doing the work would stall every standby.
   */
  async run(signal: AbortSignal, callbacks: LeadershipCallbacks): Promise<void> {
    while (!signal.aborted) {
      const acquired = await this.#acquire(signal, callbacks);
      if (!acquired) break;
      const term = new AbortController();
      this.#leading = true;
      this.#logger.info({ identity: this.identity }, 'became the leader');
      const workEnded = new AbortController();
      let endedOnItsOwn: { error: unknown } | undefined;
      const work = callbacks.onStartedLeading(term.signal).then(
        () => {
          if (!term.signal.aborted) endedOnItsOwn = { error: undefined };
          workEnded.abort();
        },
        (error: unknown) => {
          if (!term.signal.aborted) endedOnItsOwn = { error };
          workEnded.abort();
        },
      );
      const lost = await this.#renew(AbortSignal.any([signal, workEnded.signal]));
      term.abort();
      await work;
      this.#leading = false;
      if (lost) {
        this.#logger.warn({ identity: this.identity }, 'lost the leader lease; controllers stopped');
      } else {
        await this.release();
      }
      if (endedOnItsOwn) {
        throw new Error("the leader's work ended on its own; lease released", { cause: endedOnItsOwn.error });
      }
    }
  }

  /** Gives the Lease up if this candidate holds it (idempotent, never throws). */
  async release(): Promise<void> {
    try {
      const request = { signal: AbortSignal.timeout(this.#renewDeadlineMs) };
      const lease = LeaseSchema.parse(
        await this.#client.get(LEASE_TYPE, this.#namespace, this.#name, request),
      );
      if (lease.spec?.holderIdentity !== this.identity) return;
      const now = this.#now();
      await this.#replaceLease(
        lease,
        {
          holderIdentity: '',
          leaseDurationSeconds: 1,
          renewTime: microTime(now),
          acquireTime: microTime(now),
        },
        request,
      );
      this.#logger.info({ identity: this.identity }, 'released the leader lease');
    } catch (error) {
      this.#logger.warn({ err: error }, 'could not release the leader lease; it expires on its own');
    }
  }

  /** Polls until the Lease is ours (true) or `signal` aborts (false). */
  async #acquire(signal: AbortSignal, callbacks: LeadershipCallbacks): Promise<boolean> {
    let failing = false;
    while (!signal.aborted) {
      try {
        const acquired = await this.#tryAcquireOrRenew(this.#renewDeadlineMs);
        this.#reportHolder(callbacks);
        if (acquired) return true;
        failing = false;
      } catch (error) {
        if (!failing) this.#logger.warn({ err: error }, 'cannot read or write the leader lease; retrying');
        failing = true;
      }
      await sleep(jittered(this.#retryPeriodMs, 0.2), signal);
    }
    return false;
  }

  /** Renews until `signal` aborts (false) or renewals failed for the renew deadline (true: lost). */
  async #renew(signal: AbortSignal): Promise<boolean> {
    let lastRenewal = this.#now();
    while (!signal.aborted) {
      await sleep(this.#retryPeriodMs, signal);
      if (signal.aborted) return false;
      try {
        // A renewal that hangs must not outlast the deadline: past it, another candidate may
        // take the Lease while this one still believes it leads.
        const remaining = this.#renewDeadlineMs - (this.#now() - lastRenewal);
        if (await this.#tryAcquireOrRenew(Math.max(remaining, 1))) {
          lastRenewal = this.#now();
          continue;
        }
        // Someone else holds it (our record was replaced): leadership is gone now.
        return true;
      } catch (error) {
        this.#logger.warn({ err: error, sinceRenewalMs: this.#now() - lastRenewal }, 'lease renewal failed');
      }
      if (this.#now() - lastRenewal >= this.#renewDeadlineMs) return true;
    }
    return false;
  }

  /** One attempt, all its requests within `timeoutMs`. */
  async #tryAcquireOrRenew(timeoutMs: number): Promise<boolean> {
    const now = this.#now();
    const request = { signal: AbortSignal.timeout(timeoutMs) };
    const leaseDurationSeconds = Math.max(1, Math.ceil(this.#leaseDurationMs / 1000));
    const found = await this.#client.get(LEASE_TYPE, this.#namespace, this.#name, request);
    if (found === undefined) {
      try {
        const created = LeaseSchema.parse(
          await this.#client.create(
            LEASE_TYPE,
            {
              metadata: { name: this.#name, namespace: this.#namespace },
              spec: {
                holderIdentity: this.identity,
                leaseDurationSeconds,
                acquireTime: microTime(now),
                renewTime: microTime(now),
                leaseTransitions: 0,
              },
            },
            request,
          ),
        );
        this.#observed = { lease: created, at: now };
        return true;
      } catch (error) {
        if (isAlreadyExists(error)) return false;
        throw error;
      }
    }
    const lease = LeaseSchema.parse(found);
    // Expiry is judged by when *we* first saw this version of the record, on our own clock.
    const previous = this.#observed;
    const observedAt =
      previous && previous.lease.metadata.resourceVersion === lease.metadata.resourceVersion
        ? previous.at
        : now;
    this.#observed = { lease, at: observedAt };
    const holder = lease.spec?.holderIdentity ?? '';
    const theirDurationMs = (lease.spec?.leaseDurationSeconds ?? leaseDurationSeconds) * 1000;
    if (holder !== '' && holder !== this.identity && observedAt + theirDurationMs > now) {
      return false;
    }
    const ours = holder === this.identity;
    try {
      const updated = await this.#replaceLease(
        lease,
        {
          holderIdentity: this.identity,
          leaseDurationSeconds,
          acquireTime: ours && lease.spec?.acquireTime ? lease.spec.acquireTime : microTime(now),
          renewTime: microTime(now),
          leaseTransitions: (lease.spec?.leaseTransitions ?? 0) + (ours ? 0 : 1),
        },
        request,
      );
      this.#observed = { lease: updated, at: now };
      return true;
    } catch (error) {
      if (isConflict(error)) return false; // someone else wrote first
      throw new Error(`cannot update lease ${this.#namespace}/${this.#name}: ${describeError(error)}`, {
        cause: error,
      });
    }
  }

  /** Writes `lease` back with `spec` changes; the resourceVersion makes a concurrent write a 409. */
  async #replaceLease(
    lease: LeaseObject,
    spec: Partial<NonNullable<LeaseObject['spec']>>,
    request: { signal: AbortSignal },
  ): Promise<LeaseObject> {
    return LeaseSchema.parse(
      await this.#client.replace(
        LEASE_TYPE,
        {
          ...lease,
          metadata: { ...lease.metadata, name: this.#name, namespace: this.#namespace },
          spec: { ...lease.spec, ...spec },
        },
        request,
      ),
    );
  }

  #reportHolder(callbacks: LeadershipCallbacks): void {
    const holder = this.#observed?.lease.spec?.holderIdentity ?? '';
    if (holder === this.#lastHolder) return;
    this.#lastHolder = holder;
    if (holder !== '') {
      this.#logger.info({ leader: holder }, 'leader observed');
      callbacks.onNewLeader?.(holder);
    }
  }
}
