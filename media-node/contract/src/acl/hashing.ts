import { createHmac, hkdfSync, randomBytes, timingSafeEqual } from 'node:crypto';
import type { StoredKey } from './model.js';

/**
 * Access keys are stored as HMAC-SHA256(aclHashKey, key): a Redis dump (or a leaked operator
 * log) gives nothing that opens a stream, and brute-forcing it needs the secret. The hash key
 * is derived from CLUSTER_SECRET (HKDF, its own label), so nodes and the operator agree on it
 * without a second secret to distribute, and it is useless for signing node-to-node calls.
 */
export function deriveAclHashKey(clusterSecret: string): Buffer {
  return Buffer.from(hkdfSync('sha256', clusterSecret, 'rtccdn', 'acl key hash v1', 32));
}

/** A random hash key for a standalone node (its ACLs live in memory only). */
export function randomAclHashKey(): Buffer {
  return randomBytes(32);
}

export function hashAccessKey(hashKey: Buffer, key: string): string {
  return createHmac('sha256', hashKey).update(key, 'utf8').digest('hex');
}

/**
 * The stored key matching `presentedHash`, compared in constant time against every key (no
 * early exit), so timing tells nothing about which or how many keys exist. Expired keys match
 * too: the caller decides (they are refused like wrong keys).
 */
export function findKey(keys: readonly StoredKey[], presentedHash: string): StoredKey | undefined {
  const presented = Buffer.from(presentedHash, 'hex');
  let found: StoredKey | undefined;
  for (const key of keys) {
    const stored = Buffer.from(key.hash, 'hex');
    const equal = stored.length === presented.length && timingSafeEqual(stored, presented);
    if (equal && !found) found = key;
  }
  return found;
}
