/**
 * StreamAccess on its own (in-memory ACL store, or a Redis store that cannot be reached): the ACL
 * metrics it feeds, its failed-key limit, revocation of watched viewers, how store failures reach
 * the API, and close(). The ACL decisions are in acl.test.ts; the REST API over it in
 * http-public.test.ts; StreamAccess on a real Redis in test/acl/acl-store.test.ts.
 */
import { randomUUID } from 'node:crypto';
import { type AddressInfo, createServer } from 'node:net';
import { afterEach, describe, expect, it } from '@jest/globals';
import { pino } from 'pino';
import { RtccdnError } from '../../media-node/contract/errors.js';
import type { Guarded } from '../../media-node/src/acl/AccessController.js';
import { StreamAccess } from '../../media-node/src/acl/StreamAccess.js';
import { loadConfig } from '../../media-node/src/config.js';
import { MediaNodeMetrics } from '../../media-node/src/metrics.js';

const opened: StreamAccess[] = [];
afterEach(async () => {
  for (const access of opened.splice(0)) await access.close();
});

function streamAccess(
  operatorManaged = false,
  limits: { failuresPerStream?: number; failuresPerClientIp?: number } = {},
) {
  const config = { ...loadConfig({}).access, operatorManaged, ...limits };
  const metrics = new MediaNodeMetrics();
  const access = new StreamAccess({ config, redis: undefined, metrics, logger: pino({ level: 'silent' }) });
  opened.push(access);
  return { access, metrics };
}

describe('StreamAccess metrics', () => {
  it('reports no cache age and not synced before the first load, then the age in seconds', async () => {
    const { access, metrics } = streamAccess();
    expect(metrics.aclCacheAge()).toBe(-1);
    expect(metrics.aclStoreSyncedSampler()).toBe(0);
    const before = Date.now();
    await access.start();
    await new Promise((resolve) => setTimeout(resolve, 50));
    const age = metrics.aclCacheAge();
    // In seconds (not milliseconds), since the load during start().
    expect(age).toBeGreaterThanOrEqual(0.04);
    expect(age).toBeLessThanOrEqual((Date.now() - before) / 1000);
    expect(metrics.aclStoreSyncedSampler()).toBe(1);
  });
});

/** A session as the access controller sees it: closed with a reason, once. */
class ViewerSession implements Guarded {
  readonly id = randomUUID();
  closedWith: string | undefined;
  readonly #listeners: ((reason: string) => void)[] = [];
  close(reason: string) {
    if (this.closedWith !== undefined) return;
    this.closedWith = reason;
    for (const listener of this.#listeners.splice(0)) listener(reason);
  }
  once(_event: 'close', listener: (reason: string) => void) {
    this.#listeners.push(listener);
  }
}

async function refusalOf(run: () => Promise<unknown> | unknown): Promise<RtccdnError> {
  try {
    await run();
  } catch (error) {
    if (error instanceof RtccdnError) return error;
    throw error;
  }
  throw new Error('expected a refusal');
}

const KEY = 'secret-key-000000001';

describe('StreamAccess', () => {
  it('applies the configured failed-key limit per stream (429 with a retry time, a correct key still admitted)', async () => {
    const { access } = streamAccess(false, { failuresPerStream: 3, failuresPerClientIp: 1000 });
    await access.start();
    await access.replaceKeys('paid', [{ id: 'k1', key: KEY }]);
    await eventuallyTrue(() => access.cache.governing('paid') !== undefined);
    // Three different clients (the per-client limit is not what stops them).
    for (const ip of ['10.0.0.1', '10.0.1.1', '10.0.2.1']) {
      expect((await refusalOf(() => access.admit('paid', 'wrong-key-0000000001', ip))).code).toBe(
        'ACCESS_DENIED',
      );
    }
    const limited = await refusalOf(() => access.admit('paid', 'wrong-key-0000000001', '10.0.3.1'));
    expect(limited.code).toBe('RATE_LIMITED');
    expect(limited.details.retryAfterMs).toBeGreaterThan(0);
    expect(access.admit('paid', KEY, '10.0.4.1').keyId).toBe('k1');
  });

  it('revokes a watched viewer when its key is removed through the API', async () => {
    const { access } = streamAccess();
    await access.start();
    await access.replaceKeys('paid', [
      { id: 'k1', key: KEY },
      { id: 'k2', key: 'secret-key-000000002' },
    ]);
    await eventuallyTrue(() => access.cache.governing('paid') !== undefined);
    const session = new ViewerSession();
    access.watch(session, access.admit('paid', KEY, '10.0.0.1'));
    expect(access.controller.watchedCount).toBe(1);
    await access.removeKey('paid', 'k2');
    expect(session.closedWith).toBeUndefined();
    await access.removeKey('paid', 'k1');
    expect(await eventuallyTrue(() => session.closedWith !== undefined)).toBe(true);
    expect(session.closedWith).toBe('revoked: key-removed');
    expect(access.controller.watchedCount).toBe(0);
  });

  it('refuses a pattern no edge could read as a bad request, writing nothing', async () => {
    const { access } = streamAccess();
    await access.start();
    const refused = await refusalOf(() => access.replaceKeys('two words', [{ id: 'k1', key: KEY }]));
    expect(refused.code).toBe('INVALID_REQUEST');
    expect(refused.status).toBe(400);
    expect(refused.message).toContain('two words');
    expect(await access.get('two words')).toBeUndefined();
  });

  it('answers 503 with a retry time when the ACL store cannot be reached, for every change', async () => {
    // A real Redis store on a port nothing listens on: every command fails at once.
    const config = { ...loadConfig({}).access, operatorManaged: false };
    const access = new StreamAccess({
      config,
      redis: {
        url: `redis://127.0.0.1:${await closedPort()}`,
        prefix: 'down:',
        clusterSecret: 'x'.repeat(32),
      },
      metrics: new MediaNodeMetrics(),
      logger: pino({ level: 'silent' }),
    });
    opened.push(access);
    for (const change of [
      () => access.get('paid'),
      () => access.replaceKeys('paid', [{ id: 'k1', key: KEY }]),
      () => access.addKeys('paid', [{ id: 'k1', key: KEY }]),
      () => access.removeKey('paid', 'k1'),
      () => access.delete('paid'),
    ]) {
      const refused = await refusalOf(change);
      expect(refused.code).toBe('ACL_STORE_UNAVAILABLE');
      expect(refused.status).toBe(503);
      expect(refused.details.retryAfterMs).toBe(2000);
      expect(refused.message).toMatch(
        /^access rules cannot be changed right now: ACL store \w+ paid failed: /,
      );
    }
  });

  it('on close, stops watching sessions (no revocation after) and stops following the store', async () => {
    const { access } = streamAccess();
    await access.start();
    await access.replaceKeys('paid', [
      { id: 'k1', key: KEY, expiresAt: new Date(Date.now() + 300).toISOString() },
    ]);
    await eventuallyTrue(() => access.cache.governing('paid') !== undefined);
    const session = new ViewerSession();
    access.watch(session, access.admit('paid', KEY, '10.0.0.1'));
    const version = access.cache.version;
    await access.close();
    expect(access.controller.watchedCount).toBe(0);
    // The key expires, and the store (memory: still usable) changes: nothing follows either.
    await access.store.update('other', () => []);
    await new Promise((resolve) => setTimeout(resolve, 600));
    expect(session.closedWith).toBeUndefined();
    expect(access.cache.version).toBe(version);
  });
});

async function eventuallyTrue(check: () => boolean, timeoutMs = 5000): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > deadline) return false;
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
  return true;
}

/** A local TCP port with no listener (bound, then released). */
async function closedPort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  await new Promise((resolve) => server.close(resolve));
  return port;
}
