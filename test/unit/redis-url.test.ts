import { describe, expect, it } from '@jest/globals';
import {
  parseRedisUrl,
  REDIS_URL_PATTERN,
  redactRedisUrl,
  replicaAcks,
} from '../../media-node/contract/redis.js';

describe('Redis URLs (one server, or a Sentinel-managed primary)', () => {
  it('keeps redis:// and rediss:// URLs as they are (ioredis reads them)', () => {
    expect(parseRedisUrl('redis://:pw@r:6379/2')).toEqual({ kind: 'server', url: 'redis://:pw@r:6379/2' });
    expect(parseRedisUrl('rediss://r')).toEqual({ kind: 'server', url: 'rediss://r' });
    expect(replicaAcks('redis://r:6379')).toBe(0);
  });

  it('reads the Sentinels, the master name, the db, credentials and options of a Sentinel URL', () => {
    expect(
      parseRedisUrl(
        'redis+sentinel://app:p%40ss@s1.redis:26380,10.0.0.2,[fd00::3]:26381/mymaster/3?sentinelPassword=sp&acks=2',
      ),
    ).toEqual({
      kind: 'sentinel',
      sentinels: [
        { host: 's1.redis', port: 26380 },
        { host: '10.0.0.2', port: 26379 },
        { host: 'fd00::3', port: 26381 },
      ],
      masterName: 'mymaster',
      db: 3,
      tls: false,
      username: 'app',
      password: 'p@ss',
      sentinelPassword: 'sp',
      acks: 2,
    });
    expect(parseRedisUrl('rediss+sentinel://:pw@s1/m')).toMatchObject({
      tls: true,
      password: 'pw',
      acks: 1,
      db: 0,
    });
    expect(replicaAcks('redis+sentinel://s1/m?acks=0')).toBe(0);
    expect(REDIS_URL_PATTERN.test('redis+sentinel://s1/m')).toBe(true);
  });

  it('refuses what it cannot use, without echoing credentials', () => {
    for (const [url, message] of [
      ['redis+sentinel://:secret@s1:26379', /must be redis\+sentinel:\/\//],
      ['redis+sentinel://:secret@s1:99999/m', /invalid Sentinel address "s1:99999"/],
      ['redis+sentinel://:secret@s1/m y', /invalid Sentinel master name "m y"/],
      ['redis+sentinel://:secret@s1/m?acks=-1', /acks outside 0 to 16/],
      ['redis+cluster://:secret@s1/m', /must be a redis:\/\/, rediss:\/\//],
    ] as const) {
      expect(() => parseRedisUrl(url)).toThrow(message);
      expect(() => parseRedisUrl(url)).not.toThrow(/secret/);
    }
  });

  it('shows URLs without credentials in logs', () => {
    expect(redactRedisUrl('redis://user:pw@r:6379/0')).toBe('redis://r:6379/0');
    expect(redactRedisUrl('redis+sentinel://:pw@a:26379,b:26380/mymaster/1?sentinelPassword=x')).toBe(
      'redis+sentinel://a:26379,b:26380/mymaster/1',
    );
    expect(redactRedisUrl('nonsense')).toBe('redis (unparseable URL)');
  });
});
