/**
 * The StreamACL reconciler: writes a StreamACL's keys (values resolved from Secrets, hashed as
 * the media nodes check them) into its CDN's Redis, in the layout edges read
 * (media-node/contract/src/acl/AclStore.ts), and reports the truth in the status (Synced, syncedKeys,
 * lastSyncTime). Redis is only written when it does not already hold exactly these keys, so a
 * resync is free and the edges see no change.
 *
 * Deleting a StreamACL removes its keys from Redis before the object goes (a finalizer):
 * Kubernetes' garbage collector does not reach into Redis.
 */

import {
  deriveAclHashKey,
  InvalidAclError,
  type RedisAclStore,
  UNCHANGED,
  UnreadableAclError,
} from '../../../../media-node/contract/acl.js';
import { MIN_ACCESS_KEY_LENGTH, type StreamACL } from '../../api/v1alpha1.js';
import type { KubeClient } from '../../kube/client.js';
import type { EventSink } from '../../kube/events.js';
import { type SecretObject, SecretSchema, secretValue } from '../../kube/objects.js';
import { SECRET_TYPE, STREAM_ACL_TYPE } from '../../kube/resources.js';
import type { Logger } from '../../logger.js';
import type { AclStores } from '../../redis/AclStores.js';
import type { ReconcileResult } from '../../runtime/Controller.js';
import type { ObjectReconciler } from '../../runtime/ControllerBuilder.js';
import { type CacheReader, InvalidObject } from '../../runtime/TypedCache.js';
import type { CachedCDN, CachedStreamACL } from '../caches.js';
import { type Resolved, resolveRedis } from '../references.js';
import { CLUSTER_SECRET_KEY, clusterSecretName, LABELS, type Problem } from '../shared.js';
import { recordTransition, reportInvalidSpec, writeStatus } from '../status.js';
import {
  patternOwner,
  type ResolvedKey,
  type SyncOutcome,
  sameKeys,
  storedKeys,
  streamAclStatus,
} from './desired.js';
import { StreamAclCondition, StreamAclReason } from './reasons.js';

/** Removes the ACL from Redis before the StreamACL is deleted. */
export const STREAM_ACL_FINALIZER = 'rtccdn.io/streamacl-cleanup';
/** The field manager that owns only the finalizer (server-side apply merges finalizer lists). */
const FINALIZER_MANAGER = 'rtccdn-operator-streamacl-finalizer';
/** How soon a StreamACL that cannot be synced (Redis down, Secret missing) is tried again. */
const RETRY_MS = 5000;

export interface StreamAclReconcilerOptions {
  client: KubeClient;
  streamAcls: CacheReader<CachedStreamACL>;
  cdns: CacheReader<CachedCDN>;
  /** Secrets labelled rtccdn.io/access-keys=true: the only ones keys are read from. */
  secrets: CacheReader<SecretObject>;
  /** Secrets the operator created (the CDNs' cluster Secrets). */
  managedSecrets: CacheReader<SecretObject>;
  stores: AclStores;
  events: EventSink;
  logger: Logger;
  now?: () => Date;
}

/** How a StreamACL the operator cannot read is reported. */
const INVALID_SPEC_CONDITIONS = [{ type: StreamAclCondition.Synced, status: 'False' }] as const;

export class StreamAclReconciler implements ObjectReconciler<StreamACL> {
  readonly #options: StreamAclReconcilerOptions;
  readonly #now: () => Date;

  constructor(options: StreamAclReconcilerOptions) {
    this.#options = options;
    this.#now = options.now ?? (() => new Date());
  }

  async reconcile(acl: StreamACL): Promise<ReconcileResult | undefined> {
    const outcome = await this.#sync(acl);
    return outcome.problem ? { requeueAfterMs: RETRY_MS } : undefined;
  }

  reconcileInvalid(acl: InvalidObject): Promise<undefined> {
    const { client, events } = this.#options;
    return reportInvalidSpec(
      { client, events, now: this.#now() },
      STREAM_ACL_TYPE,
      acl,
      INVALID_SPEC_CONDITIONS,
    );
  }

  /**
   * Brings Redis in line with the StreamACL `namespace/name` now, as a reconcile does; true when
   * Redis is as closed as the StreamACL asks (written, possibly with fewer keys than it names, or
   * left to another StreamACL that owns the pattern). For the store sync after a Redis reset.
   */
  async syncAcl(namespace: string, name: string): Promise<boolean> {
    const cached = this.#options.streamAcls.lookup(namespace, name);
    if (!cached) return true;
    if (cached instanceof InvalidObject) {
      // Unreadable, so not enforced: its store stays unsynced and the edges admit nobody.
      await this.reconcileInvalid(cached);
      return false;
    }
    return (await this.#sync(cached)).enforced;
  }

  /**
   * One sync. Fails closed: keys that cannot be read (Secret missing or not labelled, value too
   * short, bad expiry) are left out of what is written — the stream admits only the keys that
   * could be read, possibly none — and the status says which and why. What cannot be written at
   * all (no CDN, Redis down) is retried.
   */
  async #sync(acl: StreamACL): Promise<{ enforced: boolean; problem?: Problem }> {
    if (acl.metadata.deletionTimestamp) {
      const result = await this.#finalize(acl);
      return result
        ? { enforced: false, problem: { reason: StreamAclReason.Finalizing, message: 'retrying' } }
        : { enforced: true };
    }
    await this.#ensureFinalizer(acl);

    const target = await this.#target(acl);
    if (!target.ok) return { enforced: false, problem: await this.#failed(acl, target.problem) };
    const owner = patternOwner(this.#claimants(acl));
    if (owner && owner.metadata.name !== acl.metadata.name) {
      // The owner writes the pattern: Redis is as this StreamACL's CDN wants it once the owner is.
      const problem = {
        reason: StreamAclReason.PatternConflict,
        message: `StreamACL ${owner.metadata.name} already guards "${acl.spec.stream}" on CDN ${acl.spec.cdnRef.name}`,
      };
      await this.#failed(acl, problem);
      return { enforced: true, problem };
    }
    const { keys, problem: keyProblem } = await this.#resolveKeys(acl);

    const { store, hashKey } = target.value;
    const desired = storedKeys(hashKey, keys);
    let wroteAt: Date | undefined;
    try {
      const current = await store.get(acl.spec.stream).catch((error: unknown) => {
        // An unreadable record is rewritten (that repairs it).
        if (error instanceof UnreadableAclError) return undefined;
        throw error;
      });
      if (!current || !sameKeys(current.keys, desired) || current.owner !== acl.metadata.uid) {
        await store.update(acl.spec.stream, () => desired, { owner: acl.metadata.uid });
        wroteAt = this.#now();
        this.#options.logger.info(
          {
            streamAcl: `${acl.metadata.namespace}/${acl.metadata.name}`,
            stream: acl.spec.stream,
            keyIds: desired.map((key) => key.id),
          },
          'ACL written to Redis',
        );
      }
    } catch (error) {
      const problem =
        error instanceof InvalidAclError
          ? { reason: StreamAclReason.InvalidSpec, message: error.message }
          : { reason: StreamAclReason.RedisUnavailable, message: (error as Error).message };
      return { enforced: false, problem: await this.#failed(acl, problem) };
    }
    if (keyProblem) {
      await this.#report(acl, { synced: false, problem: keyProblem }, wroteAt);
      return { enforced: true, problem: keyProblem };
    }
    await this.#report(acl, { synced: true, keys: desired.length, wroteAt });
    return { enforced: true };
  }

  /** Where the keys go: the CDN's Redis (and prefix), hashed with its cluster secret. */
  async #target(acl: StreamACL): Promise<Resolved<{ store: RedisAclStore; hashKey: Buffer }>> {
    const namespace = acl.metadata.namespace ?? 'default';
    // A CDN the operator cannot read counts as none: there is nothing to write to.
    const cdn = this.#options.cdns.get(namespace, acl.spec.cdnRef.name);
    if (!cdn) {
      return {
        ok: false,
        problem: {
          reason: StreamAclReason.CDNNotFound,
          message: `CDN ${acl.spec.cdnRef.name} not found in ${namespace}`,
        },
      };
    }
    const redis = await resolveRedis(this.#options.client, cdn);
    if (!redis.ok) return redis;
    const secretName = clusterSecretName(acl.spec.cdnRef.name);
    const secret = await this.#cachedOrLive(this.#options.managedSecrets, namespace, secretName);
    const clusterSecret = secret && secretValue(secret, CLUSTER_SECRET_KEY);
    if (!clusterSecret) {
      return {
        ok: false,
        problem: {
          reason: StreamAclReason.ClusterSecretMissing,
          message: `Secret ${secretName} (created by the CDN controller) has no ${CLUSTER_SECRET_KEY} yet`,
        },
      };
    }
    return {
      ok: true,
      value: {
        store: await this.#options.stores.get(redis.value.url, redis.value.prefix),
        hashKey: deriveAclHashKey(clusterSecret),
      },
    };
  }

  /** The keys whose values can be read; the first problem with the others, if any. */
  async #resolveKeys(acl: StreamACL): Promise<{ keys: ResolvedKey[]; problem?: Problem }> {
    const namespace = acl.metadata.namespace ?? 'default';
    const keys: ResolvedKey[] = [];
    const problems: Problem[] = [];
    for (const key of acl.spec.keys) {
      let value = key.value;
      if (key.secretKeyRef) {
        const { name, key: item } = key.secretKeyRef;
        const secret = await this.#cachedOrLive(this.#options.secrets, namespace, name);
        if (secret && secret.metadata.labels?.[LABELS.accessKeys] !== 'true') {
          problems.push({
            reason: StreamAclReason.KeySecretNotLabelled,
            message: `key ${key.id}: Secret ${name} is not labelled ${LABELS.accessKeys}=true, so its keys are not read`,
          });
          continue;
        }
        value = secret && secretValue(secret, item);
        if (value === undefined) {
          problems.push({
            reason: StreamAclReason.KeySecretMissing,
            message: secret
              ? `key ${key.id}: Secret ${name} has no key ${item}`
              : `key ${key.id}: Secret ${name} not found`,
          });
          continue;
        }
      }
      if (value === undefined || value.length < MIN_ACCESS_KEY_LENGTH) {
        problems.push({
          reason: StreamAclReason.KeyTooShort,
          message: `key ${key.id}: the value must be at least ${MIN_ACCESS_KEY_LENGTH} characters`,
        });
        continue;
      }
      const expiresAt = key.expiresAt ? Date.parse(key.expiresAt) : undefined;
      if (expiresAt !== undefined && !(expiresAt > 0)) {
        problems.push({
          reason: StreamAclReason.InvalidKey,
          message: `key ${key.id}: expiresAt must be after 1970-01-01T00:00:00Z`,
        });
        continue;
      }
      keys.push({ id: key.id, value, ...(expiresAt !== undefined ? { expiresAt } : {}) });
    }
    const [first] = problems;
    if (!first) return { keys };
    const message = `${problems.map((problem) => problem.message).join('; ')}; the stream admits only the ${keys.length} other key(s)`;
    return { keys, problem: { reason: first.reason, message } };
  }

  /**
   * A Secret from `cache` or, when the cache does not have it (yet: watches of different kinds
   * are not ordered, a StreamACL can arrive before the Secret it names), from the API server —
   * whatever its labels: the caller checks them, so that it can say why a key is not read.
   */
  async #cachedOrLive(
    cache: CacheReader<SecretObject>,
    namespace: string,
    name: string,
  ): Promise<SecretObject | undefined> {
    const cached = cache.get(namespace, name);
    if (cached) return cached;
    const live = await this.#options.client.get(SECRET_TYPE, namespace, name);
    const parsed = live === undefined ? undefined : SecretSchema.safeParse(live);
    return parsed?.success ? parsed.data : undefined;
  }

  /** The StreamACLs of the same CDN selecting the same streams (this one included). */
  #claimants(acl: StreamACL): CachedStreamACL[] {
    return this.#options.streamAcls
      .list(acl.metadata.namespace ?? 'default')
      .filter(
        (other) => other.spec.cdnRef.name === acl.spec.cdnRef.name && other.spec.stream === acl.spec.stream,
      );
  }

  async #ensureFinalizer(acl: StreamACL): Promise<void> {
    if (acl.metadata.finalizers?.includes(STREAM_ACL_FINALIZER)) return;
    await this.#applyFinalizers(acl, [STREAM_ACL_FINALIZER]);
  }

  async #applyFinalizers(acl: StreamACL, finalizers: string[]): Promise<void> {
    await this.#options.client.apply(
      STREAM_ACL_TYPE,
      { metadata: { name: acl.metadata.name ?? '', namespace: acl.metadata.namespace, finalizers } },
      { fieldManager: FINALIZER_MANAGER },
    );
  }

  /**
   * Removes the keys from Redis (unless another StreamACL now guards the same streams: it takes
   * over and writes its own keys), then lets the object go.
   */
  async #finalize(acl: StreamACL): Promise<ReconcileResult | undefined> {
    if (!acl.metadata.finalizers?.includes(STREAM_ACL_FINALIZER)) return undefined;
    // The cache can still hold the object after an earlier pass let it go. Acting on that copy
    // would remove keys a successor has written since, and an apply to remove the finalizer
    // from an object that no longer exists would create it again. Act only on the live object.
    const live = (await this.#options.client.get(
      STREAM_ACL_TYPE,
      acl.metadata.namespace,
      acl.metadata.name ?? '',
    )) as StreamACL | undefined;
    if (
      live?.metadata.uid !== acl.metadata.uid ||
      !live?.metadata.finalizers?.includes(STREAM_ACL_FINALIZER)
    ) {
      return undefined;
    }
    const successor = patternOwner(
      this.#claimants(acl).filter((other) => other.metadata.name !== acl.metadata.name),
    );
    if (!successor) {
      const target = await this.#target(acl);
      if (target.ok) {
        try {
          // Only what this StreamACL wrote: one created since for the same streams may own it now.
          let writtenByAnother = false;
          await target.value.store.update(acl.spec.stream, (current) => {
            writtenByAnother = current?.owner !== undefined && current.owner !== acl.metadata.uid;
            return writtenByAnother ? UNCHANGED : undefined;
          });
          this.#options.logger.info(
            { streamAcl: `${acl.metadata.namespace}/${acl.metadata.name}`, stream: acl.spec.stream },
            writtenByAnother
              ? 'ACL left in Redis: another StreamACL wrote it since'
              : 'ACL removed from Redis',
          );
        } catch (error) {
          return this.#fail(acl, {
            reason: StreamAclReason.RedisUnavailable,
            message: `cannot remove the ACL: ${(error as Error).message}`,
          });
        }
      } else if (target.problem.reason !== StreamAclReason.CDNNotFound) {
        // Without the CDN there is no Redis to clean (it went with the CDN); anything else is retried.
        return this.#fail(acl, target.problem);
      }
    }
    await this.#applyFinalizers(acl, []);
    return undefined;
  }

  async #fail(acl: StreamACL, problem: Problem): Promise<ReconcileResult> {
    await this.#failed(acl, problem);
    return { requeueAfterMs: RETRY_MS };
  }

  /** Reports `problem` (Synced=False) and returns it. */
  async #failed(acl: StreamACL, problem: Problem): Promise<Problem> {
    await this.#report(acl, { synced: false, problem });
    return problem;
  }

  async #report(acl: StreamACL, outcome: SyncOutcome, wroteAt?: Date): Promise<void> {
    const { client, events } = this.#options;
    const status = streamAclStatus(acl, outcome, this.#now(), wroteAt);
    const metadata = { name: acl.metadata.name ?? '', namespace: acl.metadata.namespace };
    if (await writeStatus(client, STREAM_ACL_TYPE, { metadata, status: acl.status }, status)) {
      // Losing sync is a Warning; getting it (back) a Normal event.
      recordTransition(
        events,
        acl,
        acl.status?.conditions,
        status.conditions ?? [],
        StreamAclCondition.Synced,
        'False',
      );
    }
  }
}
