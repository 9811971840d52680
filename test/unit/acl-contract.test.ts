/**
 * The ACL contract shared by the media nodes, the ACL APIs and the operator: what a pattern, a
 * key and a stored record may be (the REST API and the edges refuse the rest), which ACL governs
 * a stream, and how keys are hashed and found. Pure functions: no store, no server.
 */
import { describe, expect, it } from '@jest/globals';
import type { z } from 'zod';
import {
  ACL_RECORD_VERSION,
  AccessKeyInputSchema,
  AccessKeyListSchema,
  AclPatternSchema,
  AclRecordSchema,
  deriveAclHashKey,
  findKey,
  governingAcl,
  hashAccessKey,
  KeyIdSchema,
  MIN_ACCESS_KEY_LENGTH,
  patternMatches,
  randomAclHashKey,
  StoredKeySchema,
  specificity,
} from '../../media-node/contract/acl.js';
import { deriveSigningKey } from '../../media-node/contract/internal-api.js';

/** The first issue's message when `schema` refuses `value`; undefined when it accepts it. */
function refusal(schema: z.ZodType, value: unknown): string | undefined {
  const parsed = schema.safeParse(value);
  return parsed.success ? undefined : parsed.error.issues[0]!.message;
}

const HASH = 'a'.repeat(64);

describe('ACL patterns (AclPatternSchema)', () => {
  const NAME_RULE =
    'stream must be a stream name (1-128 of [A-Za-z0-9._-]) or a prefix ending in * (e.g. sales-*); renditions follow their source';

  it.each(['webinar', 'Sales_Q3.final-1', 'x'.repeat(128), 'sales-*', '*', `${'x'.repeat(127)}*`])(
    'accepts %s',
    (pattern) => {
      expect(refusal(AclPatternSchema, pattern)).toBeUndefined();
    },
  );

  it.each([
    ['an empty name', ''],
    ['a name over 128 characters', 'x'.repeat(129)],
    ['a prefix over 127 characters', `${'x'.repeat(128)}*`],
    ['a rendition name', 'match~360p'],
    ['a * inside the name', 'sales-*-eu'],
    ['two stars', '**'],
    ['a space', 'my stream'],
    ['a slash', 'a/b'],
    ['a leading character outside the alphabet', '/sales-*'],
    ['a trailing character outside the alphabet', 'sales/'],
  ])('refuses %s, saying what a pattern is', (_what, pattern) => {
    expect(refusal(AclPatternSchema, pattern)).toBe(NAME_RULE);
  });
});

describe('access keys (KeyIdSchema, AccessKeyInputSchema, AccessKeyListSchema)', () => {
  const key = (fields: Record<string, unknown> = {}) => ({ id: 'k1', key: 'k'.repeat(16), ...fields });

  it('accepts key ids of 1-63 characters of [A-Za-z0-9._-] and nothing else', () => {
    const rule = 'key id must be 1-63 characters of [A-Za-z0-9._-]';
    expect(refusal(KeyIdSchema, 'a')).toBeUndefined();
    expect(refusal(KeyIdSchema, 'A.b_c-9'.padEnd(63, 'x'))).toBeUndefined();
    expect(refusal(KeyIdSchema, '')).toBe(rule);
    expect(refusal(KeyIdSchema, 'x'.repeat(64))).toBe(rule);
    expect(refusal(KeyIdSchema, 'a b')).toBe(rule);
    expect(refusal(KeyIdSchema, '/abc')).toBe(rule);
    expect(refusal(KeyIdSchema, 'abc/')).toBe(rule);
  });

  it('takes keys of 16 to 512 characters', () => {
    expect(MIN_ACCESS_KEY_LENGTH).toBe(16);
    expect(refusal(AccessKeyInputSchema, key())).toBeUndefined();
    expect(refusal(AccessKeyInputSchema, key({ key: 'k'.repeat(512) }))).toBeUndefined();
    expect(refusal(AccessKeyInputSchema, key({ key: 'k'.repeat(15) }))).toBe(
      'key must be at least 16 characters (use a random token)',
    );
    expect(refusal(AccessKeyInputSchema, key({ key: 'k'.repeat(513) }))).toBe(
      'key must be at most 512 characters',
    );
    expect(refusal(AccessKeyInputSchema, key({ id: 'a b' }))).toBe(
      'key id must be 1-63 characters of [A-Za-z0-9._-]',
    );
  });

  it('takes an optional RFC 3339 expiry (with an offset) after the epoch', () => {
    expect(AccessKeyInputSchema.parse(key())).toEqual(key());
    expect(refusal(AccessKeyInputSchema, key({ expiresAt: '2030-01-01T00:00:00Z' }))).toBeUndefined();
    expect(refusal(AccessKeyInputSchema, key({ expiresAt: '2030-01-01T02:00:00+02:00' }))).toBeUndefined();
    expect(refusal(AccessKeyInputSchema, key({ expiresAt: '1970-01-01T00:00:00.001Z' }))).toBeUndefined();
    expect(refusal(AccessKeyInputSchema, key({ expiresAt: 'tomorrow' }))).toBe(
      'expiresAt must be an RFC 3339 date-time',
    );
    // Stored as ms since the epoch, which must be positive.
    for (const expiresAt of ['1970-01-01T00:00:00Z', '1969-12-31T23:59:59Z'])
      expect(refusal(AccessKeyInputSchema, key({ expiresAt }))).toBe(
        'expiresAt must be after 1970-01-01T00:00:00Z',
      );
  });

  it('takes at most 1000 keys per stream, with unique ids', () => {
    const keys = (count: number) => Array.from({ length: count }, (_, i) => key({ id: `k${i}` }));
    expect(refusal(AccessKeyListSchema, [])).toBeUndefined();
    expect(refusal(AccessKeyListSchema, keys(1000))).toBeUndefined();
    expect(refusal(AccessKeyListSchema, keys(1001))).toBe('at most 1000 keys per stream');
    expect(refusal(AccessKeyListSchema, [key(), key({ key: 'l'.repeat(16) })])).toBe(
      'key ids must be unique',
    );
  });
});

describe('stored records (StoredKeySchema, AclRecordSchema)', () => {
  const record = (fields: Record<string, unknown> = {}) => ({
    v: 1,
    pattern: 'show',
    keys: [{ id: 'k', hash: HASH }],
    updatedAt: 1,
    ...fields,
  });

  it('stores a key as its id, a 64-hex-digit hash and an optional positive integer expiry (ms)', () => {
    const rule = 'hash must be 64 hex characters';
    expect(refusal(StoredKeySchema, { id: 'k', hash: HASH })).toBeUndefined();
    expect(refusal(StoredKeySchema, { id: 'k', hash: '0123456789abcdef'.repeat(4) })).toBeUndefined();
    expect(refusal(StoredKeySchema, { id: 'k', hash: HASH, expiresAt: 1 })).toBeUndefined();
    expect(refusal(StoredKeySchema, { id: 'k', hash: 'a'.repeat(63) })).toBe(rule);
    expect(refusal(StoredKeySchema, { id: 'k', hash: 'A'.repeat(64) })).toBe(rule);
    expect(refusal(StoredKeySchema, { id: 'k', hash: `x${HASH}` })).toBe(rule);
    expect(refusal(StoredKeySchema, { id: 'k', hash: `${HASH}x` })).toBe(rule);
    expect(refusal(StoredKeySchema, { id: 'k/', hash: HASH })).toBeDefined();
    for (const expiresAt of [0, -1, 1.5])
      expect(refusal(StoredKeySchema, { id: 'k', hash: HASH, expiresAt })).toBeDefined();
  });

  it('reads version 1 records only, with an optional owner of 1-128 characters', () => {
    expect(ACL_RECORD_VERSION).toBe(1);
    expect(refusal(AclRecordSchema, record())).toBeUndefined();
    expect(refusal(AclRecordSchema, record({ owner: 'u' }))).toBeUndefined();
    expect(refusal(AclRecordSchema, record({ owner: 'u'.repeat(128) }))).toBeUndefined();
    expect(refusal(AclRecordSchema, record({ v: 2 }))).toBeDefined();
    expect(refusal(AclRecordSchema, record({ owner: '' }))).toBeDefined();
    expect(refusal(AclRecordSchema, record({ owner: 'u'.repeat(129) }))).toBeDefined();
    expect(refusal(AclRecordSchema, record({ updatedAt: 1.5 }))).toBeDefined();
    expect(refusal(AclRecordSchema, record({ pattern: 'a~b' }))).toBeDefined();
  });
});

describe('which ACL governs a stream', () => {
  it('covers a stream by its exact name, or by a prefix pattern', () => {
    expect(patternMatches('show', 'show')).toBe(true);
    expect(patternMatches('show', 'shows')).toBe(false);
    expect(patternMatches('show', 'sho')).toBe(false);
    expect(patternMatches('show*', 'show')).toBe(true);
    expect(patternMatches('show*', 'showcase')).toBe(true);
    expect(patternMatches('show*', 'sho')).toBe(false);
    // A pattern is not a name: `show*` guards names starting with `show`, not the name `show*x`.
    expect(patternMatches('show*', 'xshow')).toBe(false);
    expect(patternMatches('*', '')).toBe(true);
  });

  it('ranks an exact name above every prefix, and a longer prefix above a shorter one', () => {
    expect(specificity('*')).toBe(0);
    expect(specificity('ab*')).toBe(2);
    expect(specificity('ab')).toBe(Number.MAX_SAFE_INTEGER);
    expect(specificity('x'.repeat(128))).toBeGreaterThan(specificity(`${'x'.repeat(127)}*`));
  });

  it('picks the most specific covering record, whatever the order, and none when none covers', () => {
    const records = [
      { pattern: 'sales-eu-*' },
      { pattern: 'sales-*' },
      { pattern: '*' },
      { pattern: 'other' },
    ];
    expect(governingAcl(records, 'sales-eu-1')?.pattern).toBe('sales-eu-*');
    expect(governingAcl([...records].reverse(), 'sales-eu-1')?.pattern).toBe('sales-eu-*');
    expect(governingAcl(records, 'sales-us-1')?.pattern).toBe('sales-*');
    expect(governingAcl(records, 'free')?.pattern).toBe('*');
    expect(governingAcl(records, 'other')?.pattern).toBe('other');
    expect(governingAcl(records.slice(0, 2), 'free')).toBeUndefined();
    expect(governingAcl([], 'free')).toBeUndefined();
  });
});

describe('key hashing', () => {
  it('derives the hash key from CLUSTER_SECRET with its own label (fixed: stored hashes survive upgrades)', () => {
    // A change here would make every stored key unknown to nodes of the new version.
    expect(deriveAclHashKey('a-cluster-secret').toString('hex')).toBe(
      '53c5c0858c87c0b8e3c0b31392e5a6f4777ba546f8ca358cc562e7307844fa46',
    );
    expect(deriveAclHashKey('another-secret').equals(deriveAclHashKey('a-cluster-secret'))).toBe(false);
    // Useless for signing node-to-node calls.
    expect(deriveAclHashKey('a-cluster-secret').equals(deriveSigningKey('a-cluster-secret'))).toBe(false);
  });

  it('makes standalone hash keys of 32 random bytes', () => {
    const a = randomAclHashKey();
    expect(a).toHaveLength(32);
    expect(a.equals(randomAclHashKey())).toBe(false);
  });

  it('hashes a key as HMAC-SHA256 over its UTF-8 bytes, in hex', () => {
    expect(hashAccessKey(Buffer.alloc(32, 7), 'clé-d-accès-0123456')).toBe(
      '8343fcd063717eca936b21fcfd69af042e98c8a4c15e76d530218847ff8b70c0',
    );
  });

  it('finds the stored key with the presented hash, expired or not, and the first one of equal hashes', () => {
    const keys = [
      { id: 'a', hash: 'a'.repeat(64) },
      { id: 'b', hash: 'b'.repeat(64), expiresAt: 1 },
      { id: 'b2', hash: 'b'.repeat(64) },
    ];
    expect(findKey(keys, 'a'.repeat(64))?.id).toBe('a');
    // Expired keys are found: the caller refuses them like wrong ones.
    expect(findKey(keys, 'b'.repeat(64))?.id).toBe('b');
    expect(findKey(keys, 'c'.repeat(64))).toBeUndefined();
    expect(findKey([], 'a'.repeat(64))).toBeUndefined();
  });

  it('finds nothing (and does not throw) for a presented hash of another length', () => {
    const keys = [{ id: 'a', hash: 'a'.repeat(64) }];
    expect(findKey(keys, 'a'.repeat(62))).toBeUndefined();
    expect(findKey(keys, '')).toBeUndefined();
    expect(findKey(keys, 'a'.repeat(66))).toBeUndefined();
  });
});
