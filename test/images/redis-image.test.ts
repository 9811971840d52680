/**
 * The Redis image (the Dockerfile's `redis` target, helm/rtccdn `redis.enabled`): Debian's
 * redis-server under tini as 1000:1000, a password from REDIS_PASSWORD that is on no command line,
 * and the append-only file in /data, which survives a clean restart and a SIGKILL.
 *
 * Every container runs with `--network none`; the test talks to Redis through `docker exec
 * redis-cli` inside the container. Needs `npm run images`; run with `npm run test:images`.
 */
import { randomBytes } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { docker, dockerOk, requireImage } from '../../scripts/harness/docker.js';

const IMAGE = process.env.RTCCDN_REDIS_IMAGE ?? 'rtccdn/redis:latest';
const PASSWORD = randomBytes(12).toString('hex');

describe(`${IMAGE}`, () => {
  const name = `rtccdn-redis-test-${randomBytes(4).toString('hex')}`;

  /** redis-cli in the container; `auth` false runs it without REDISCLI_AUTH. */
  const cli = async (args: string[], auth = true) =>
    dockerOk(['exec', ...(auth ? ['-e', `REDISCLI_AUTH=${PASSWORD}`] : []), name, 'redis-cli', ...args]);

  /** Waits until the server answers PONG (the probe the chart uses); throws with its logs if it exits. */
  const waitForPong = async (timeoutMs = 20_000) => {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const reply = await docker(['exec', '-e', `REDISCLI_AUTH=${PASSWORD}`, name, 'redis-cli', 'ping']);
      if (reply.code === 0 && reply.stdout.trim() === 'PONG') return;
      const state = (await dockerOk(['inspect', '-f', '{{.State.Status}}', name])).trim();
      if (state !== 'running' && state !== 'restarting' && state !== 'created') {
        const logs = await docker(['logs', '--tail', '30', name]);
        throw new Error(`container ${name} is ${state}:\n${logs.stdout}${logs.stderr}`);
      }
      if (Date.now() > deadline)
        throw new Error(`redis in ${name} did not answer PONG within ${timeoutMs} ms`);
      await new Promise((resolve) => setTimeout(resolve, 200));
    }
  };

  beforeAll(async () => {
    await requireImage(IMAGE);
    await dockerOk([
      'run',
      '-d',
      '--name',
      name,
      '--network',
      'none',
      '-e',
      `REDIS_PASSWORD=${PASSWORD}`,
      IMAGE,
    ]);
    await waitForPong();
  }, 60_000);

  afterAll(async () => {
    await docker(['rm', '-f', name]);
  });

  it('runs Debian’s redis-server 7 as 1000:1000 under tini, with the append-only file in /data', async () => {
    const config = JSON.parse(await dockerOk(['image', 'inspect', '-f', '{{json .Config}}', IMAGE]));
    expect(config.User).toBe('1000:1000');
    expect(config.Entrypoint).toEqual(['/usr/bin/tini', '--', '/usr/local/bin/rtccdn-redis']);
    expect(await cli(['info', 'server'])).toMatch(/redis_version:7\./);
    expect(await dockerOk(['exec', name, 'id', '-u'])).toBe('1000');
    expect(await cli(['config', 'get', 'appendonly'])).toBe('appendonly\nyes');
    expect(await cli(['config', 'get', 'dir'])).toBe('dir\n/data');
    // The password is the server's, and on no command line in the container.
    expect(await cli(['config', 'get', 'requirepass'])).toBe(`requirepass\n${PASSWORD}`);
    const cmdlines = await dockerOk([
      'exec',
      name,
      'sh',
      '-c',
      'for f in /proc/[0-9]*/cmdline; do tr "\\0" " " <"$f"; echo; done',
    ]);
    expect(cmdlines).toContain('redis-server');
    expect(cmdlines).not.toContain(PASSWORD);
  });

  it('answers PING only with the password (redis-cli exits 0 either way: compare the reply)', async () => {
    expect(await cli(['ping'], false)).toMatch(/^NOAUTH/);
    expect(await cli(['ping'])).toBe('PONG');
  });

  it('keeps what was written across a clean restart and across a SIGKILL (appendonly)', async () => {
    expect(await cli(['set', 'rtccdn:test:a', 'before-restart'])).toBe('OK');
    await dockerOk(['restart', '-t', '10', name]);
    await waitForPong();
    expect(await cli(['get', 'rtccdn:test:a'])).toBe('before-restart');
    // A write acknowledged before a crash: the AOF is written before the reply is sent, so the
    // kernel has it even though the process dies before its next fsync.
    expect(await cli(['set', 'rtccdn:test:b', 'before-kill'])).toBe('OK');
    await dockerOk(['kill', '-s', 'KILL', name]);
    await dockerOk(['start', name]);
    await waitForPong();
    expect(await cli(['mget', 'rtccdn:test:a', 'rtccdn:test:b'])).toBe('before-restart\nbefore-kill');
    expect(await dockerOk(['exec', name, 'ls', '/data/appendonlydir'])).toMatch(
      /appendonly\.aof\.\d+\.incr\.aof/,
    );
  });

  it('exits 0 on SIGTERM after a clean shutdown (tini forwards it to redis-server)', async () => {
    await dockerOk(['stop', '-t', '20', name]);
    expect(await dockerOk(['inspect', '-f', '{{.State.ExitCode}}', name])).toBe('0');
    const logs = await docker(['logs', '--tail', '5', name]);
    expect(`${logs.stdout}${logs.stderr}`).toMatch(/ready to exit, bye bye/);
  });

  it('refuses a password that cannot go into a config line and a URL, in one line, exit 2', async () => {
    const bad = await docker(['run', '--rm', '--network', 'none', '-e', 'REDIS_PASSWORD=a b', IMAGE]);
    expect(bad.code).toBe(2);
    expect(bad.stderr.trim()).toMatch(/^rtccdn-redis: REDIS_PASSWORD may hold only /);
  });
});
