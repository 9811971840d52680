/**
 * Kubernetes' name rules, written once for the operator (kube/names.ts), and where they are
 * enforced outside the CRDs: the operator's configuration.
 */
import { describe, expect, it } from '@jest/globals';
import { loadOperatorConfig } from '../../../operator/src/config.js';
import { dnsLabel, dnsSubdomain, isDnsLabel } from '../../../operator/src/kube/names.js';

const label63 = `a${'b'.repeat(61)}c`;

describe('DNS names', () => {
  it.each([
    ['eu-west', true],
    ['0abc', true],
    [label63, true],
    [`${label63}d`, false],
    ['', false],
    ['-eu', false],
    ['eu-', false],
    ['EU', false],
    ['eu.west', false],
  ])('%j is a DNS label: %s', (value, expected) => {
    expect(isDnsLabel(value)).toBe(expected);
    expect(dnsLabel().safeParse(value).success).toBe(expected);
  });

  it('says what a DNS label is, whichever rule is broken', () => {
    for (const value of ['', `${label63}d`, 'EU']) {
      expect(dnsLabel('must be a namespace name').safeParse(value).error?.issues[0]?.message).toBe(
        'must be a namespace name',
      );
    }
  });

  it('accepts dotted subdomains up to 253 characters', () => {
    expect(dnsSubdomain().safeParse('rtccdn-operator.leases').success).toBe(true);
    expect(dnsSubdomain().safeParse(`${'a.'.repeat(126)}ab`).success).toBe(false);
    expect(dnsSubdomain().safeParse('a..b').success).toBe(false);
  });
});

describe('operator configuration names', () => {
  const base = { LEADER_ELECTION: 'false' };

  it('takes namespaces and a default CDN made of DNS labels', () => {
    const config = loadOperatorConfig({
      ...base,
      WATCH_NAMESPACE: 'media',
      OPERATOR_MODE: 'acl-api',
      ADMIN_TOKEN: 'an-admin-token-of-16+',
      ACL_API_DEFAULT_CDN: 'media/live',
    });
    expect(config.watchNamespace).toBe('media');
    expect(config.aclApi?.defaultCdn).toBe('media/live');
  });

  it.each([
    [{ WATCH_NAMESPACE: 'Media' }, /WATCH_NAMESPACE must be a namespace name/],
    [{ WATCH_NAMESPACE: `${label63}d` }, /WATCH_NAMESPACE must be a namespace name/],
    [{ LEASE_NAME: 'Lease' }, /LEASE_NAME must be a DNS subdomain/],
    [
      { OPERATOR_MODE: 'acl-api', ADMIN_TOKEN: 'an-admin-token-of-16+', ACL_API_DEFAULT_CDN: 'live' },
      /ACL_API_DEFAULT_CDN must be namespace\/name/,
    ],
    [
      { OPERATOR_MODE: 'acl-api', ADMIN_TOKEN: 'an-admin-token-of-16+', ACL_API_DEFAULT_CDN: 'a/b/c' },
      /ACL_API_DEFAULT_CDN must be namespace\/name/,
    ],
  ])('refuses %j', (env, message) => {
    expect(() => loadOperatorConfig({ ...base, ...env })).toThrow(message);
  });
});
