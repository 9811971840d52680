/**
 * Pure functions of the operator's ACL REST API: the StreamACL and Secret that represent an
 * ACL written through the API. Key values go into the Secret only (never into the StreamACL),
 * which references them with secretKeyRef; the StreamACL controller does the rest.
 */
import { createHash } from 'node:crypto';
import type { AccessKeyInput } from '../../../media-node/contract/acl.js';
import { API_VERSION, STREAM_ACL_NAMES } from '../api/v1alpha1.js';
import { LABELS } from '../controllers/shared.js';

/** Who manages API-written objects (kubectl-written StreamACLs are left to their authors). */
export const ACL_API_MANAGER = 'rtccdn-acl-api';
export const STREAM_ANNOTATION = 'rtccdn.io/stream';

/**
 * A valid object name for a stream pattern, stable and collision-free: a readable slug plus a
 * hash of the exact pattern (patterns may hold upper case, `.`, `~` and `*`).
 */
export function streamAclName(pattern: string): string {
  const slug = pattern
    .toLowerCase()
    .replace(/\*/g, 'all')
    .replace(/[^a-z0-9-]+/g, '-')
    .replace(/-+/g, '-')
    .replace(/^-|-$/g, '')
    .slice(0, 40);
  const hash = createHash('sha256').update(pattern).digest('hex').slice(0, 8);
  return `acl-${slug ? `${slug}-` : ''}${hash}`;
}

export const keysSecretName = (aclName: string): string => `${aclName}-keys`;

export interface ApiAcl {
  namespace: string;
  cdn: string;
  pattern: string;
  keys: AccessKeyInput[];
}

const labels = (cdn: string) => ({ [LABELS.managedBy]: ACL_API_MANAGER, [LABELS.cdn]: cdn });

/** The StreamACL for `acl`: keys by reference to the Secret, expiry inline. */
export function desiredStreamAcl(acl: ApiAcl) {
  const name = streamAclName(acl.pattern);
  return {
    apiVersion: API_VERSION,
    kind: STREAM_ACL_NAMES.kind,
    metadata: {
      name,
      namespace: acl.namespace,
      labels: labels(acl.cdn),
      annotations: { [STREAM_ANNOTATION]: acl.pattern },
    },
    spec: {
      cdnRef: { name: acl.cdn },
      stream: acl.pattern,
      keys: acl.keys.map((key) => ({
        id: key.id,
        secretKeyRef: { name: keysSecretName(name), key: key.id },
        ...(key.expiresAt !== undefined ? { expiresAt: key.expiresAt } : {}),
      })),
    },
  };
}

/** The Secret holding the key values, owned by the StreamACL (deleted with it). */
export function desiredKeysSecret(acl: ApiAcl, owner: { uid: string } | undefined) {
  const aclName = streamAclName(acl.pattern);
  return {
    apiVersion: 'v1',
    kind: 'Secret',
    metadata: {
      name: keysSecretName(aclName),
      namespace: acl.namespace,
      // The StreamACL controller reads keys only from Secrets labelled for it.
      labels: { ...labels(acl.cdn), [LABELS.accessKeys]: 'true' },
      ...(owner
        ? {
            ownerReferences: [
              {
                apiVersion: API_VERSION,
                kind: STREAM_ACL_NAMES.kind,
                name: aclName,
                uid: owner.uid,
                controller: true,
              },
            ],
          }
        : {}),
    },
    type: 'Opaque',
    data: Object.fromEntries(
      acl.keys.map((key) => [key.id, Buffer.from(key.key, 'utf8').toString('base64')]),
    ),
  };
}
