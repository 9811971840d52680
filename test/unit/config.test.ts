import { describe, expect, it } from '@jest/globals';
import { ConfigError, loadConfig } from '../../media-node/src/config.js';

describe('loadConfig', () => {
  it('applies defaults', () => {
    const config = loadConfig({ ANNOUNCED_IP: '203.0.113.7' });
    expect(config).toMatchObject({
      role: 'all',
      httpPort: 8080,
      rtcPort: 40000,
      announcedAddress: '203.0.113.7',
      logLevel: 'info',
      publishToken: undefined,
    });
    expect(config.workers).toBeGreaterThanOrEqual(1);
  });

  it('serves HTTPS with both TLS_CERT_FILE and TLS_KEY_FILE, plain HTTP with neither', () => {
    expect(loadConfig({}).tls).toBeUndefined();
    expect(loadConfig({ TLS_CERT_FILE: '/etc/tls/tls.crt', TLS_KEY_FILE: '/etc/tls/tls.key' }).tls).toEqual({
      certFile: '/etc/tls/tls.crt',
      keyFile: '/etc/tls/tls.key',
    });
  });

  it('announces the listen address when it is specific', () => {
    expect(loadConfig({ RTC_LISTEN_IP: '127.0.0.1' }).announcedAddress).toBe('127.0.0.1');
  });

  it('is standalone without REDIS_URL, and a cluster member with it', () => {
    expect(loadConfig({}).cluster).toBeUndefined();
    const config = loadConfig({
      ROLE: 'edge',
      REGION: 'eu-west',
      NODE_ID: 'edge-1',
      REDIS_URL: 'redis://redis:6379',
      CLUSTER_SECRET: '0123456789abcdef',
      INTERNAL_ADDRESS: '10.0.0.7',
      PIPE_PORT_RANGE: '42000-42099',
    });
    expect(config.role).toBe('edge');
    expect(config.cluster).toMatchObject({
      nodeId: 'edge-1',
      region: 'eu-west',
      internalAddress: '10.0.0.7',
      pipePortRange: [42000, 42099],
      relayLingerMs: 10_000,
      regionalRelay: true,
      redisPrefix: 'rtccdn:',
    });
  });

  it('serves the internal port on loopback standalone and on HOST in a CDN', () => {
    expect(loadConfig({}).internalHost).toBe('127.0.0.1');
    expect(
      loadConfig({
        ROLE: 'edge',
        REDIS_URL: 'redis://r:6379',
        CLUSTER_SECRET: '0123456789abcdef',
        HOST: '10.1.1.1',
      }).internalHost,
    ).toBe('10.1.1.1');
    expect(loadConfig({ TRUSTED_PROXIES: ' 10.0.0.1 , fd00::/8' }).trustedProxies).toEqual([
      '10.0.0.1',
      'fd00::/8',
    ]);
  });

  it('starts standalone with Redis when the ACL API is guarded or the operator writes the ACLs', () => {
    const base = { ROLE: 'all', REDIS_URL: 'redis://r:6379', CLUSTER_SECRET: '0123456789abcdef' };
    expect(loadConfig({ ...base, ADMIN_TOKEN: 'admin-token-0123456789' }).adminToken).toBe(
      'admin-token-0123456789',
    );
    expect(loadConfig({ ...base, ACL_API: 'kubernetes' }).aclApi).toBe('kubernetes');
  });

  it('gives each pod of a StatefulSet its own WebRTC ports (RTC_PORT + POD_INDEX × WORKERS)', () => {
    expect(loadConfig({ RTC_PORT: '31000', WORKERS: '2' }).rtcPort).toBe(31000);
    expect(loadConfig({ RTC_PORT: '31000', WORKERS: '2', POD_INDEX: '3' }).rtcPort).toBe(31006);
    expect(() => loadConfig({ RTC_PORT: '65000', WORKERS: '2', POD_INDEX: '300' })).toThrow(/leaves no room/);
  });

  it('bounds sessions being set up node-wide at 64 per worker unless MAX_PENDING_SESSIONS is set (README)', () => {
    expect(loadConfig({ WORKERS: '2' }).limits.maxPendingSessions).toBe(128);
    expect(loadConfig({ WORKERS: '2', MAX_PENDING_SESSIONS: '10' }).limits.maxPendingSessions).toBe(10);
  });

  it('treats an empty PUBLISH_TOKEN as unset', () => {
    expect(loadConfig({ PUBLISH_TOKEN: '' }).publishToken).toBeUndefined();
    expect(loadConfig({ PUBLISH_TOKEN: 's3cret' }).publishToken).toBe('s3cret');
  });

  it.each([
    [{ PORT: 'abc' }, /^invalid configuration: PORT must be a number \(got "abc"\)$/],
    [{ RTC_PORT: '70000' }, /^invalid configuration: RTC_PORT must be between 1 and 65535/],
    [{ WORKERS: '0' }, /^invalid configuration: WORKERS must be at least 1/],
    [{ WORKERS: '1.5' }, /^invalid configuration: WORKERS must be an integer/],
    [{ LOG_LEVEL: 'loud' }, /^invalid configuration: LOG_LEVEL must be one of/],
    [{ ROLE: 'relay' }, /^invalid configuration: ROLE must be one of origin, edge, transcoder, all/],
    [{ ROLE: 'edge' }, /^invalid configuration: REDIS_URL is required for ROLE origin, edge and transcoder/],
    [{ ROLE: 'origin', REDIS_URL: 'redis://r:6379' }, /^invalid configuration: CLUSTER_SECRET is required/],
    [
      { ROLE: 'edge', REDIS_URL: 'redis://r:6379', CLUSTER_SECRET: 'short' },
      /^invalid configuration: CLUSTER_SECRET must be at least 16 characters/,
    ],
    [{ REDIS_URL: 'http://r:6379' }, /^invalid configuration: REDIS_URL must be a redis:\/\//],
    [
      { REDIS_URL: 'redis+sentinel://s1:26379' },
      /^invalid configuration: REDIS_URL must be redis\+sentinel:\/\//,
    ],
    [
      { REDIS_URL: 'redis+sentinel://:p4ss@s1/m?sentinelPasword=x' },
      // Shown without the password.
      /^invalid configuration: REDIS_URL has an unknown option "sentinelPasword" \(got "redis\+sentinel:\/\/\*\*\*@s1\/m\?sentinelPasword=x"\)$/,
    ],
    [{ PIPE_PORT_RANGE: '42000-41000' }, /^invalid configuration: PIPE_PORT_RANGE must be min-max/],
    [{ REGION: 'EU West' }, /^invalid configuration: REGION must be a DNS label/],
    [{ RTC_LISTEN_IP: 'not-an-ip' }, /^invalid configuration: RTC_LISTEN_IP/],
    [{ RTC_PORT: '65535', WORKERS: '2' }, /^invalid configuration: RTC_PORT RTC_PORT \+ WORKERS - 1/],
    // A standalone node writing the shared Redis would serve an open ACL API for the whole CDN.
    [
      { ROLE: 'all', REDIS_URL: 'redis://r:6379', CLUSTER_SECRET: '0123456789abcdef' },
      /^invalid configuration: ADMIN_TOKEN is required for ROLE=all with REDIS_URL/,
    ],
    [
      {
        ROLE: 'edge',
        REDIS_URL: 'redis://r:6379',
        CLUSTER_SECRET: '0123456789abcdef',
        INTERNAL_ADDRESS: 'edge-1.local',
      },
      /^invalid configuration: INTERNAL_ADDRESS must be an IP address/,
    ],
    [
      {
        ROLE: 'edge',
        REDIS_URL: 'redis://r:6379',
        CLUSTER_SECRET: '0123456789abcdef',
        ANNOUNCED_IP: 'media.example.com',
      },
      /^invalid configuration: INTERNAL_ADDRESS must be set to an IP address when ANNOUNCED_IP is a host name/,
    ],
    [
      { TRUSTED_PROXIES: '10.0.0.1,proxy.local' },
      /^invalid configuration: TRUSTED_PROXIES must list IP addresses or CIDRs \(bad entry "proxy.local"\)/,
    ],
    [
      { TRUSTED_PROXIES: '10.0.0.0/33' },
      /^invalid configuration: TRUSTED_PROXIES must list IP addresses or CIDRs/,
    ],
    [
      { TLS_CERT_FILE: '/etc/tls/tls.crt' },
      /^invalid configuration: TLS_KEY_FILE is required with TLS_CERT_FILE \(HTTPS needs both the certificate and its key\)$/,
    ],
    [
      { TLS_KEY_FILE: '/etc/tls/tls.key', TLS_CERT_FILE: ' ' },
      /^invalid configuration: TLS_CERT_FILE is required with TLS_KEY_FILE \(HTTPS needs both the certificate and its key\) \(got " "\)$/,
    ],
  ])('rejects %j with a one-line message naming the variable', (env, message) => {
    expect(() => loadConfig(env)).toThrow(ConfigError);
    expect(() => loadConfig(env)).toThrow(message);
  });

  it('plays the rendition ladder to viewers without ?profile only with ADAPTIVE_LADDER=true', () => {
    expect(loadConfig({}).transcode.adaptiveLadder).toBe(false);
    expect(loadConfig({ ADAPTIVE_LADDER: 'true' }).transcode.adaptiveLadder).toBe(true);
    expect(() => loadConfig({ ADAPTIVE_LADDER: 'sometimes' })).toThrow(ConfigError);
  });
});
