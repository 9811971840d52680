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
