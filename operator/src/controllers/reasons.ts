/**
 * Reasons that shared code (references.ts, status.ts) reports, or that more than one kind
 * reports. Each kind lists every reason it reports in its own `reasons.ts`, taking these from
 * here, so that a reason has one spelling everywhere: Kubernetes style, CamelCase with acronyms
 * upper case (`CDNNotFound`).
 */
export const SharedReason = {
  /** The object does not parse with the operator's schema (CRD and operator versions apart). */
  InvalidSpec: 'InvalidSpec',
  /** spec.cdnRef names no CDN in the namespace. */
  CDNNotFound: 'CDNNotFound',
  /** The CDN's cluster Secret (created by the CDN controller) is not there yet. */
  ClusterSecretMissing: 'ClusterSecretMissing',
  /** A name the workloads would get is too long or not a DNS-1035 label. */
  InvalidName: 'InvalidName',
  /** spec.redis.secretRef names a Secret or key that does not exist. */
  RedisSecretMissing: 'RedisSecretMissing',
  /** The Secret's value is not a Redis URL the media nodes accept (redis://, rediss://, redis+sentinel://…). */
  RedisSecretInvalid: 'RedisSecretInvalid',
  /** spec.publishTokenSecretRef names a Secret or key that does not exist. */
  PublishTokenSecretMissing: 'PublishTokenSecretMissing',
} as const;
