import { timingSafeEqual } from 'node:crypto';
import { HttpError } from '../errors.js';

/** Bearer token check in constant time; absent/unequal → 401 with a WWW-Authenticate challenge. */
export function requireBearer(authorization: string | undefined, expected: string, realm: string): void {
  const match = /^Bearer\s+(.+)$/i.exec(authorization ?? '');
  const presented = Buffer.from(match?.[1]?.trim() ?? '');
  const wanted = Buffer.from(expected);
  const ok = presented.length === wanted.length && timingSafeEqual(presented, wanted);
  if (!ok) {
    throw new HttpError(401, match ? 'invalid bearer token' : 'missing bearer token', {
      'WWW-Authenticate': `Bearer realm="${realm}"`,
    });
  }
}
