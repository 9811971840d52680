/**
 * Reads what a CDN references: the Redis URL (inline or in a Secret), the publish-token Secret
 * and the cluster Secret. A missing reference is a Problem (a status condition), not an error.
 */
import { parseRedisUrl } from '../../../media-node/contract/redis.js';
import type { CDN } from '../api/v1alpha1.js';
import type { KubeClient } from '../kube/client.js';
import { type SecretObject, SecretSchema, secretValue } from '../kube/objects.js';
import { SECRET_TYPE } from '../kube/resources.js';
import { SharedReason } from './reasons.js';
import { type Problem, redisPrefixFor } from './shared.js';

/** A value read from a reference, or the Problem (a status condition) that kept it from being read. */
export type Resolved<T> = { ok: true; value: T } | { ok: false; problem: Problem };

export async function readSecret(
  client: KubeClient,
  namespace: string,
  name: string,
): Promise<SecretObject | undefined> {
  const found = await client.get(SECRET_TYPE, namespace, name);
  return found === undefined ? undefined : SecretSchema.parse(found);
}

export interface RedisTarget {
  url: string;
  prefix: string;
}

/** Where the CDN's cluster registry lives. */
export async function resolveRedis(client: KubeClient, cdn: CDN): Promise<Resolved<RedisTarget>> {
  const namespace = cdn.metadata.namespace ?? 'default';
  const prefix = redisPrefixFor(namespace, cdn.metadata.name ?? '');
  const { url, secretRef } = cdn.spec.redis;
  if (url) return { ok: true, value: { url, prefix } };
  if (!secretRef) {
    return {
      ok: false,
      problem: { reason: SharedReason.InvalidSpec, message: 'spec.redis has neither url nor secretRef' },
    };
  }
  const secret = await readSecret(client, namespace, secretRef.name);
  const value = secret && secretValue(secret, secretRef.key)?.trim();
  if (!secret || value === undefined) {
    return {
      ok: false,
      problem: {
        reason: SharedReason.RedisSecretMissing,
        message: secret
          ? `Secret ${secretRef.name} has no key ${secretRef.key} (spec.redis.secretRef)`
          : `Secret ${secretRef.name} not found (spec.redis.secretRef)`,
      },
    };
  }
  try {
    parseRedisUrl(value);
  } catch (error) {
    return {
      ok: false,
      problem: {
        reason: SharedReason.RedisSecretInvalid,
        message: `key ${secretRef.key} of Secret ${secretRef.name} is not a usable Redis URL: ${(error as Error).message}`,
      },
    };
  }
  return { ok: true, value: { url: value, prefix } };
}

/** The publish-token Secret exists and has its key (or no token is configured). */
export async function checkPublishToken(client: KubeClient, cdn: CDN): Promise<Problem | undefined> {
  const ref = cdn.spec.publishTokenSecretRef;
  if (!ref) return undefined;
  const secret = await readSecret(client, cdn.metadata.namespace ?? 'default', ref.name);
  if (secret && secretValue(secret, ref.key)) return undefined;
  return {
    reason: SharedReason.PublishTokenSecretMissing,
    message: secret
      ? `Secret ${ref.name} has no key ${ref.key} (spec.publishTokenSecretRef)`
      : `Secret ${ref.name} not found (spec.publishTokenSecretRef)`,
  };
}
