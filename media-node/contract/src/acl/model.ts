import { z } from 'zod';

/**
 * Stream access control: the data model shared by the REST API, the Redis layout, the edges'
 * cache and the operator (which writes the same records from StreamACL resources).
 *
 * An ACL guards one stream name exactly (`webinar-acme`) or every name with a prefix
 * (`sales-*`; `*` alone guards everything). The most specific ACL wins: an exact name beats any
 * prefix, a longer prefix beats a shorter one. A stream no ACL covers follows the CDN-wide
 * default policy (allow: public; deny: private).
 *
 * Keys are never stored: only HMAC-SHA256(ACL hash key, key) — see hashing.ts.
 */

/**
 * An exact stream name, or a prefix followed by `*` (the prefix itself may be empty). No `~`:
 * a rendition (`name~360p`) is governed by its source's ACL, never by one of its own.
 */
export const AclPatternSchema = z
  .string()
  .regex(
    /^([A-Za-z0-9._-]{1,128}|[A-Za-z0-9._-]{0,127}\*)$/,
    'stream must be a stream name (1-128 of [A-Za-z0-9._-]) or a prefix ending in * (e.g. sales-*); renditions follow their source',
  );
export type AclPattern = z.infer<typeof AclPatternSchema>;

export const KeyIdSchema = z
  .string()
  .regex(/^[A-Za-z0-9._-]{1,63}$/, 'key id must be 1-63 characters of [A-Za-z0-9._-]');

/** The shortest access key accepted anywhere (both ACL APIs, StreamACLs): use random tokens. */
export const MIN_ACCESS_KEY_LENGTH = 16;

/** What the API accepts for one key: the secret comes in once and is hashed at once. */
export const AccessKeyInputSchema = z.object({
  id: KeyIdSchema,
  key: z
    .string()
    .min(
      MIN_ACCESS_KEY_LENGTH,
      `key must be at least ${MIN_ACCESS_KEY_LENGTH} characters (use a random token)`,
    )
    .max(512, 'key must be at most 512 characters'),
  expiresAt: z.iso
    .datetime({ offset: true, error: 'expiresAt must be an RFC 3339 date-time' })
    // Stored as ms since the epoch, which must be positive (a record edges can read).
    .refine((value) => Date.parse(value) > 0, 'expiresAt must be after 1970-01-01T00:00:00Z')
    .optional(),
});
export type AccessKeyInput = z.infer<typeof AccessKeyInputSchema>;

export const AccessKeyListSchema = z
  .array(AccessKeyInputSchema)
  .max(1000, 'at most 1000 keys per stream')
  .refine((keys) => new Set(keys.map((key) => key.id)).size === keys.length, 'key ids must be unique');

/** A key as stored: its id, its keyed hash (hex) and its expiry (ms since the epoch). */
export const StoredKeySchema = z.object({
  id: KeyIdSchema,
  hash: z.string().regex(/^[0-9a-f]{64}$/, 'hash must be 64 hex characters'),
  expiresAt: z.number().int().positive().optional(),
});
export type StoredKey = z.infer<typeof StoredKeySchema>;

export const ACL_RECORD_VERSION = 1;

/** One ACL as stored (Redis value / memory). */
export const AclRecordSchema = z.object({
  v: z.literal(ACL_RECORD_VERSION),
  pattern: AclPatternSchema,
  keys: z.array(StoredKeySchema),
  /** When it was last written (ms, writer's clock). */
  updatedAt: z.number().int(),
  /**
   * Who wrote it, when the writer manages it as one object: the uid of the operator's StreamACL.
   * Removing a deleted StreamACL's keys leaves a record another StreamACL has written since.
   */
  owner: z.string().min(1).max(128).optional(),
});
export type AclRecord = z.infer<typeof AclRecordSchema>;

export type DefaultPolicy = 'allow' | 'deny';

/** Does `pattern` cover `stream`? */
export function patternMatches(pattern: string, stream: string): boolean {
  return pattern.endsWith('*') ? stream.startsWith(pattern.slice(0, -1)) : pattern === stream;
}

/** Higher is more specific: an exact name beats every prefix; a longer prefix beats a shorter. */
export function specificity(pattern: string): number {
  return pattern.endsWith('*') ? pattern.length - 1 : Number.MAX_SAFE_INTEGER;
}

/** The ACL that governs `stream`: the most specific one covering it, if any. */
export function governingAcl<T extends { pattern: string }>(
  records: Iterable<T>,
  stream: string,
): T | undefined {
  let best: T | undefined;
  for (const record of records) {
    if (!patternMatches(record.pattern, stream)) continue;
    if (!best || specificity(record.pattern) > specificity(best.pattern)) best = record;
  }
  return best;
}
