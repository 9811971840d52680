/**
 * Pure functions of the StreamACL controller: what to write to Redis for a StreamACL (its keys,
 * hashed exactly as the media nodes check them), whether Redis already holds it, which
 * StreamACL owns a pattern when several claim it, and the status to report.
 */

import type { StoredKey } from '../../../../media-node/contract/acl.js';
import { hashAccessKey } from '../../../../media-node/contract/acl.js';
import type { StreamACL, StreamACLStatus } from '../../api/v1alpha1.js';
import { mergeConditions, rfc3339 } from '../../runtime/conditions.js';
import type { Problem } from '../shared.js';
import { StreamAclCondition, StreamAclReason } from './reasons.js';

/** A key with its value read (inline or from its Secret). */
export interface ResolvedKey {
  id: string;
  value: string;
  expiresAt?: number | undefined;
}

/** The keys as the ACL record stores them: HMAC hashes, never values. */
export function storedKeys(hashKey: Buffer, keys: readonly ResolvedKey[]): StoredKey[] {
  return keys.map((key) => ({
    id: key.id,
    hash: hashAccessKey(hashKey, key.value),
    ...(key.expiresAt !== undefined ? { expiresAt: key.expiresAt } : {}),
  }));
}

/** Same keys (ids, hashes, expiry), in any order: nothing to write. */
export function sameKeys(a: readonly StoredKey[], b: readonly StoredKey[]): boolean {
  if (a.length !== b.length) return false;
  const byId = new Map(b.map((key) => [key.id, key]));
  return a.every((key) => {
    const other = byId.get(key.id);
    return other !== undefined && other.hash === key.hash && other.expiresAt === key.expiresAt;
  });
}

/** Names of the Secrets a StreamACL reads keys from. */
export function referencedSecrets(acl: Pick<StreamACL, 'spec'>): string[] {
  return [...new Set(acl.spec.keys.flatMap((key) => (key.secretKeyRef ? [key.secretKeyRef.name] : [])))];
}

interface Claimant {
  metadata: { name: string; creationTimestamp?: string | undefined; deletionTimestamp?: string | undefined };
}

/**
 * Of the StreamACLs of one CDN selecting the same streams, the oldest (then the first by name)
 * writes them; the others report a conflict. Ones being deleted do not count.
 */
export function patternOwner<T extends Claimant>(claimants: readonly T[]): T | undefined {
  return [...claimants]
    .filter((claimant) => !claimant.metadata.deletionTimestamp)
    .sort(
      (a, b) =>
        (a.metadata.creationTimestamp ?? '').localeCompare(b.metadata.creationTimestamp ?? '') ||
        a.metadata.name.localeCompare(b.metadata.name),
    )[0];
}

export type SyncOutcome =
  | { synced: true; keys: number; wroteAt: Date | undefined }
  | { synced: false; problem: Problem };

/** The status after a sync attempt: Synced tells whether the edges enforce this spec. */
export function streamAclStatus(
  acl: StreamACL,
  outcome: SyncOutcome,
  now: Date,
  /** When a failed sync still wrote (what it could read: fail closed). */
  wroteAt?: Date,
): StreamACLStatus {
  const generation = acl.metadata.generation;
  const previous = acl.status;
  const condition = outcome.synced
    ? {
        type: StreamAclCondition.Synced,
        status: 'True' as const,
        reason: StreamAclReason.Synced,
        message: `${outcome.keys} key(s) enforced by the edges of CDN ${acl.spec.cdnRef.name}`,
      }
    : { type: StreamAclCondition.Synced, status: 'False' as const, ...outcome.problem };
  const syncedKeys = outcome.synced ? outcome.keys : previous?.syncedKeys;
  const written = outcome.synced ? outcome.wroteAt : wroteAt;
  const lastSyncTime = written ? rfc3339(written) : previous?.lastSyncTime;
  return {
    ...(generation !== undefined ? { observedGeneration: generation } : {}),
    conditions: mergeConditions(previous?.conditions, [condition], generation, now),
    ...(syncedKeys !== undefined ? { syncedKeys } : {}),
    ...(lastSyncTime !== undefined ? { lastSyncTime } : {}),
  };
}
