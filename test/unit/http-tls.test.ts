/**
 * The public port's TLS pair, in-process: what readTlsPair accepts and how it refuses (a
 * ConfigError naming the variable at fault), and how TlsReloader installs a renewed pair, keeps
 * the current one when the new files do not check out (logged once), polls as a backstop, and
 * stops on close() — also when the server closes.
 * Certificates are made by the openssl CLI; test/media/https.test.ts runs a node over HTTPS.
 */
import { mkdtempSync, rmSync, unlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { SecureContextOptions } from 'node:tls';
import { afterEach, beforeEach, describe, expect, it, jest } from '@jest/globals';
import { pino } from 'pino';
import { ConfigError } from '../../media-node/src/config.js';
import { createHttpServer } from '../../media-node/src/http/server.js';
import { readTlsPair, TlsReloader } from '../../media-node/src/http/tls.js';
import { makeCertificate, tlsRequest } from '../../scripts/harness/https.js';
import { fakeMediaNode } from './support/fake-node.js';

const first = makeCertificate('rtccdn-first');
const second = makeCertificate('rtccdn-second');

let dir: string;
let files: { certFile: string; keyFile: string };
beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'rtccdn-tls-unit-'));
  files = { certFile: join(dir, 'tls.crt'), keyFile: join(dir, 'tls.key') };
});
afterEach(() => rmSync(dir, { recursive: true, force: true }));

const write = (cert: string, key: string) => {
  writeFileSync(files.certFile, cert);
  writeFileSync(files.keyFile, key);
};
const refusal = (): string => {
  try {
    readTlsPair(files);
  } catch (error) {
    expect(error).toBeInstanceOf(ConfigError);
    return (error as Error).message;
  }
  throw new Error('readTlsPair accepted the pair');
};

describe('readTlsPair', () => {
  it('reads a certificate and its key, with the fingerprint and expiry of the certificate', () => {
    write(first.cert, first.key);
    const pair = readTlsPair(files);
    expect(pair.cert.toString()).toBe(first.cert);
    expect(pair.key.toString()).toBe(first.key);
    expect(pair.fingerprint).toBe(first.fingerprint);
    expect(Date.parse(pair.validTo)).toBeGreaterThan(Date.now());
  });

  it('refuses, naming the variable and file at fault: unreadable files, no certificate, no key, a key of another certificate', () => {
    expect(refusal()).toBe(`invalid configuration: TLS_CERT_FILE ${files.certFile} cannot be read (ENOENT)`);
    writeFileSync(files.certFile, first.cert);
    expect(refusal()).toBe(`invalid configuration: TLS_KEY_FILE ${files.keyFile} cannot be read (ENOENT)`);
    write('not a certificate', first.key);
    expect(refusal()).toMatch(
      new RegExp(
        `^invalid configuration: TLS_CERT_FILE ${files.certFile} holds no PEM certificate \\(.+\\)$`,
      ),
    );
    write(first.cert, 'not a key');
    expect(refusal()).toMatch(
      new RegExp(
        `^invalid configuration: TLS_KEY_FILE ${files.keyFile} holds no unencrypted PEM private key \\(.+\\)$`,
      ),
    );
    write(first.cert, second.key);
    expect(refusal()).toBe(
      `invalid configuration: TLS_KEY_FILE ${files.keyFile} is not the key of the certificate in TLS_CERT_FILE ${files.certFile}`,
    );
  });
});

describe('TlsReloader', () => {
  /** A reloader started on the first pair; `changedBeforeWatch`: files replaced before it watches. */
  const setup = (changedBeforeWatch?: { cert: string; key: string }) => {
    write(first.cert, first.key);
    const initial = readTlsPair(files);
    if (changedBeforeWatch) write(changedBeforeWatch.cert, changedBeforeWatch.key);
    const installed: SecureContextOptions[] = [];
    const logs: { level: number; msg: string; fingerprint?: string }[] = [];
    const logger = pino({ level: 'debug' }, { write: (line: string) => logs.push(JSON.parse(line)) });
    const reloader = new TlsReloader(
      files,
      { setSecureContext: (options) => installed.push(options) },
      logger,
      initial,
    );
    const messages = (level: number) => logs.filter((log) => log.level === level).map((log) => log.msg);
    return { reloader, installed, logs, errors: () => messages(50), infos: () => messages(30) };
  };

  it('installs a renewed pair once, and only when the files changed', () => {
    const { reloader, installed, logs } = setup();
    try {
      reloader.check();
      expect(installed).toEqual([]); // the pair it started with
      write(second.cert, second.key);
      reloader.check();
      reloader.check();
      expect(installed.map((options) => [String(options.cert), String(options.key)])).toEqual([
        [second.cert, second.key],
      ]);
      expect(logs).toMatchObject([
        { msg: 'TLS certificate reloaded: new connections use it', fingerprint: second.fingerprint },
      ]);
    } finally {
      reloader.close();
    }
  });

  it('keeps the current pair when the new files do not check out, says so once, and takes them once fixed', () => {
    const { reloader, installed, errors } = setup();
    try {
      write(second.cert, first.key); // a renewal caught half-way
      reloader.check();
      reloader.check();
      expect(installed).toEqual([]);
      expect(errors()).toEqual([
        `new TLS certificate/key not used, the current pair is kept: TLS_KEY_FILE ${files.keyFile} is not the key of the certificate in TLS_CERT_FILE ${files.certFile}`,
      ]);
      write(second.cert, second.key);
      reloader.check();
      expect(installed.map((options) => String(options.cert))).toEqual([second.cert]);
      // The same bad pair again later is reported again: it is news after a good one.
      write(first.cert, second.key);
      reloader.check();
      expect(errors()).toHaveLength(2);
    } finally {
      reloader.close();
    }
  });

  it('keeps the current pair while the files cannot be read, and says so once', () => {
    const { reloader, installed, errors } = setup();
    try {
      unlinkSync(files.keyFile);
      reloader.check();
      reloader.check();
      expect(installed).toEqual([]);
      expect(errors()).toHaveLength(1);
      expect(errors()[0]).toMatch(/^new TLS certificate\/key not used, the current pair is kept: ENOENT/);
    } finally {
      reloader.close();
    }
  });

  it('notices a change of the files by itself, and no more after close()', async () => {
    const { reloader, installed } = setup();
    try {
      write(second.cert, second.key);
      // Well before the 10 s poll: the directory watch noticed it.
      const deadline = Date.now() + 5000;
      while (installed.length === 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
      expect(installed.map((options) => String(options.cert))).toEqual([second.cert]);
    } finally {
      reloader.close();
    }
    write(first.cert, first.key);
    await new Promise((resolve) => setTimeout(resolve, 1000));
    expect(installed).toHaveLength(1);
  });
  it('installs nothing once closed, not even a change it noticed just before', async () => {
    jest.useFakeTimers({ doNotFake: ['setImmediate', 'nextTick', 'queueMicrotask'] });
    const { reloader, installed } = setup();
    try {
      write(second.cert, second.key);
      // The watch's event arrives on a later turn of the event loop and starts the debounce.
      for (let turn = 0; turn < 10_000 && jest.getTimerCount() < 2; turn++)
        await new Promise((resolve) => setImmediate(resolve));
      expect(jest.getTimerCount()).toBe(2); // the poll, and one debounce however many events came
      reloader.close();
      expect(jest.getTimerCount()).toBe(0);
      jest.advanceTimersByTime(60_000);
      expect(installed).toEqual([]);
    } finally {
      reloader.close();
      jest.useRealTimers();
    }
  });

  it('also reads the files every 10 s, for file systems that report no change, and stops on close()', () => {
    jest.useFakeTimers();
    // Changed before the reloader watches: only its poll can notice.
    const { reloader, installed } = setup(second);
    try {
      jest.advanceTimersByTime(9_999);
      expect(installed).toEqual([]);
      jest.advanceTimersByTime(1);
      expect(installed.map((options) => String(options.cert))).toEqual([second.cert]);
      reloader.close();
      write(first.cert, first.key);
      jest.advanceTimersByTime(60_000);
      expect(installed).toHaveLength(1);
      expect(jest.getTimerCount()).toBe(0);
    } finally {
      reloader.close();
      jest.useRealTimers();
    }
  });
});

describe('the public server over TLS', () => {
  it('serves HTTPS with the configured pair, and a renewed pair to new connections without a restart', async () => {
    write(first.cert, first.key);
    const fake = await fakeMediaNode({}, { config: { tls: files } });
    const app = await createHttpServer(fake.node);
    try {
      const address = await app.listen({ host: '127.0.0.1', port: 0 });
      const ca = `${first.cert}${second.cert}`;
      const served = async () => (await tlsRequest(`${address}/healthz`, { ca })).fingerprint;
      expect(address).toMatch(/^https:/);
      expect(await served()).toBe(first.fingerprint);
      // Browsers that reached it over HTTPS keep to HTTPS, also on refusals.
      for (const path of ['/healthz', '/no-such-route']) {
        const answer = await tlsRequest(`${address}${path}`, { ca });
        expect(answer.headers['strict-transport-security']).toBe('max-age=31536000');
      }
      write(second.cert, second.key);
      const deadline = Date.now() + 5000;
      while ((await served()) !== second.fingerprint && Date.now() < deadline)
        await new Promise((resolve) => setTimeout(resolve, 50));
      expect(await served()).toBe(second.fingerprint);
    } finally {
      await app.close();
      await fake.close();
    }
  });

  it('stops watching the TLS files when the server closes', async () => {
    write(first.cert, first.key);
    const fake = await fakeMediaNode({}, { config: { tls: files } });
    const app = await createHttpServer(fake.node);
    await app.listen({ host: '127.0.0.1', port: 0 });
    const server = app.server as unknown as { setSecureContext(options: SecureContextOptions): void };
    const installed: SecureContextOptions[] = [];
    server.setSecureContext = (options) => installed.push(options);
    await app.close();
    await fake.close();
    write(second.cert, second.key);
    // Five times the watch's debounce: a reloader still watching would have installed it.
    await new Promise((resolve) => setTimeout(resolve, 1000));
    expect(installed).toEqual([]);
  });
});
