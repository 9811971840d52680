import { z } from 'zod';

/** Stream names are URL-safe by construction (RFC 3986 unreserved characters). */
export const StreamNameSchema = z
  .string()
  .regex(/^[A-Za-z0-9._~-]{1,128}$/, 'stream name must be 1-128 characters of [A-Za-z0-9._~-]');

export const SessionIdSchema = z.uuid();
