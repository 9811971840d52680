import { z } from 'zod';

/** Separates a rendition's source and profile in its name (`match~360p`); reserved for that. */
export const RENDITION_SEPARATOR = '~';

/**
 * Any stream the CDN carries: a published name, or a rendition's `{source}~{profile}`. URL-safe
 * by construction (RFC 3986 unreserved characters). Internal records and relays use this.
 */
export const StreamNameSchema = z
  .string()
  .regex(/^[A-Za-z0-9._~-]{1,128}$/, 'stream name must be 1-128 characters of [A-Za-z0-9._~-]');

/**
 * A name a publisher may take, and what viewers and ACLs name: `~` is reserved for renditions,
 * so that nobody can publish (or protect, or play around its source's ACL) `premium~360p`.
 */
export const PublishedStreamNameSchema = z
  .string()
  .regex(
    /^[A-Za-z0-9._-]{1,128}$/,
    'stream name must be 1-128 characters of [A-Za-z0-9._-] (~ is reserved for renditions: play one with ?profile=)',
  );

export const SessionIdSchema = z.uuid();

/** RFC 1123 label (Kubernetes' rule): regions, profile names, namespaces, key ids. */
export const DNS_LABEL_PATTERN = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/;
export const DNS_LABEL_MAX_LENGTH = 63;

export const isDnsLabel = (value: string): boolean =>
  value.length <= DNS_LABEL_MAX_LENGTH && DNS_LABEL_PATTERN.test(value);

/**
 * A DNS label of at most `maxLength` characters; `message` is the error for any violation (empty,
 * too long, other characters). The pattern leaves the length out so that a CRD states it as
 * maxLength.
 */
export const dnsLabel = (
  message = 'must be a DNS label (lowercase letters, digits and -)',
  maxLength = DNS_LABEL_MAX_LENGTH,
) => z.string().min(1, message).max(maxLength, message).regex(DNS_LABEL_PATTERN, message);

/** A region: a DNS label, like Kubernetes' topology.kubernetes.io/region values (eu-west-1). */
export const RegionSchema = dnsLabel('region must be a DNS label (lowercase letters, digits, -)');
