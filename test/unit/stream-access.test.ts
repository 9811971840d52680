/**
 * StreamAccess on its own (in-memory ACL store): the ACL metrics it feeds. The ACL decisions are
 * in acl.test.ts; the REST API over it in http-public.test.ts.
 */
import { afterEach, describe, expect, it } from '@jest/globals';
import { pino } from 'pino';
import { StreamAccess } from '../../media-node/src/acl/StreamAccess.js';
import { loadConfig } from '../../media-node/src/config.js';
import { MediaNodeMetrics } from '../../media-node/src/metrics.js';

const opened: StreamAccess[] = [];
afterEach(async () => {
  for (const access of opened.splice(0)) await access.close();
});

function streamAccess(operatorManaged = false) {
  const config = { ...loadConfig({}).access, operatorManaged };
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
