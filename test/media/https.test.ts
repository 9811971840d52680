import { spawnSync } from 'node:child_process';
import {
  mkdirSync,
  mkdtempSync,
  readFileSync,
  renameSync,
  rmSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs';
import { connect } from 'node:http2';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import {
  makeCertificate,
  type TestCertificate,
  type TlsResponse,
  tlsRequest,
} from '../../scripts/harness/https.js';
import { eventually, type RunningNode, sleep, startNode } from '../../scripts/harness/node.js';
import { type NodeProcess, spawnNode } from '../../scripts/harness/node-process.js';
import { TestPublisher, TestViewer } from '../../scripts/harness/peers.js';
import { freeTcpPort, portBlock } from '../../scripts/harness/ports.js';

const MAIN = fileURLToPath(new URL('../../media-node/src/main.ts', import.meta.url));
const whipOffer = readFileSync(new URL('../fixtures/libwebrtc-whip-offer.sdp', import.meta.url), 'utf8');
const ADMIN_TOKEN = 'https-test-admin-token-0123456789';

/**
 * A directory laid out as Kubernetes mounts a Secret: tls.crt and tls.key are symlinks into
 * `..data`, itself a symlink to a timestamped directory; an update writes a new directory and
 * swaps `..data` atomically (a rename) — the files themselves are never written.
 */
class SecretMount {
  readonly dir = mkdtempSync(join(tmpdir(), 'rtccdn-tls-'));
  #version = 0;
  readonly certFile = join(this.dir, 'tls.crt');
  readonly keyFile = join(this.dir, 'tls.key');

  constructor(cert: string, key: string) {
    this.update(cert, key);
    symlinkSync('..data/tls.crt', this.certFile);
    symlinkSync('..data/tls.key', this.keyFile);
  }

  update(cert: string, key: string): void {
    const version = `..v${++this.#version}`;
    mkdirSync(join(this.dir, version));
    writeFileSync(join(this.dir, version, 'tls.crt'), cert);
    writeFileSync(join(this.dir, version, 'tls.key'), key);
    symlinkSync(version, join(this.dir, '..data_tmp'));
    renameSync(join(this.dir, '..data_tmp'), join(this.dir, '..data'));
  }

  remove(): void {
    rmSync(this.dir, { recursive: true, force: true });
  }
}

/** What a client sees of a response that must not depend on the transport. */
function visible(response: { status: number; headers: Record<string, string>; body: string }) {
  return {
    status: response.status,
    contentType: response.headers['content-type'],
    allowOrigin: response.headers['access-control-allow-origin'],
    exposed: response.headers['access-control-expose-headers'],
    acceptPost: response.headers['accept-post'],
    allow: response.headers.allow,
    body: response.body,
  };
}

async function plainRequest(
  url: string,
  init: { method?: string; headers?: Record<string, string>; body?: string },
): Promise<{ status: number; headers: Record<string, string>; body: string }> {
  const response = await fetch(url, init);
  return {
    status: response.status,
    headers: Object.fromEntries(response.headers),
    body: await response.text(),
  };
}

describe('HTTPS on the public port (TLS_CERT_FILE, TLS_KEY_FILE)', () => {
  const first = makeCertificate('rtccdn-first');
  let mount: SecretMount;
  let tls: RunningNode;
  let plain: RunningNode;

  beforeAll(async () => {
    mount = new SecretMount(first.cert, first.key);
    const env = { WORKERS: '1', ADMIN_TOKEN };
    tls = await startNode({ ...env, TLS_CERT_FILE: mount.certFile, TLS_KEY_FILE: mount.keyFile });
    plain = await startNode(env);
  }, 60_000);
  afterAll(async () => {
    await tls?.close();
    await plain?.close();
    mount?.remove();
  }, 60_000);

  it('speaks HTTP/2 to clients that offer it and HTTP/1.1 to the others, with the certificate', async () => {
    expect(tls.baseUrl).toMatch(/^https:/);
    const h2 = await tlsRequest(`${tls.baseUrl}/readyz`, { ca: first.cert, http2: true });
    const h1 = await tlsRequest(`${tls.baseUrl}/readyz`, { ca: first.cert });
    expect([h2.status, h2.protocol, h2.fingerprint]).toEqual([200, 'h2', first.fingerprint]);
    expect([h1.status, h1.protocol, h1.fingerprint]).toEqual([200, 'http/1.1', first.fingerprint]);
    // Browsers that came over HTTPS keep to it (HSTS), on refusals too; plain HTTP sends none.
    expect(h2.headers['strict-transport-security']).toBe('max-age=31536000');
    const refused = await tlsRequest(`${tls.baseUrl}/whep/some-stream`, { ca: first.cert, method: 'POST' });
    expect([refused.status, refused.headers['strict-transport-security']]).toEqual([415, 'max-age=31536000']);
    expect((await fetch(`${plain.baseUrl}/readyz`)).headers.get('strict-transport-security')).toBeNull();
    // Only HTTPS: a plain-HTTP client gets no answer it could take for one.
    await expect(
      fetch(tls.baseUrl.replace('https:', 'http:'), { signal: AbortSignal.timeout(5000) }),
    ).rejects.toThrow();
  });

  it('answers every route as plain HTTP does: demo page, CORS, WHIP/WHEP refusals, ACL API, stream list', async () => {
    const origin = { Origin: 'https://player.example' };
    const requests: { method: string; path: string; headers?: Record<string, string>; body?: string }[] = [
      { method: 'GET', path: '/' },
      { method: 'GET', path: '/demo/whip-whep.js' },
      { method: 'GET', path: '/api/v1/streams', headers: origin },
      {
        method: 'OPTIONS',
        path: '/whep/some-stream',
        headers: { ...origin, 'Access-Control-Request-Method': 'POST' },
      },
      {
        method: 'POST',
        path: '/whep/some-stream',
        headers: { ...origin, 'Content-Type': 'text/plain' },
        body: 'x',
      },
      {
        method: 'POST',
        path: '/whip/Bad%20Name',
        headers: { 'Content-Type': 'application/sdp' },
        body: 'v=0',
      },
      {
        method: 'POST',
        path: '/whep/nobody-here',
        headers: { 'Content-Type': 'application/sdp' },
        body: whipOffer,
      },
      { method: 'DELETE', path: '/whep/some-stream/no-such-session' },
      { method: 'GET', path: '/api/v1/streams/some-stream/acl' },
      {
        method: 'OPTIONS',
        path: '/api/v1/streams/some-stream/acl',
        headers: { ...origin, 'Access-Control-Request-Method': 'PUT' },
      },
    ];
    for (const { method, path, headers, body } of requests) {
      const init = { method, ...(headers ? { headers } : {}), ...(body !== undefined ? { body } : {}) };
      const expected = visible(await plainRequest(`${plain.baseUrl}${path}`, init));
      const overH1 = visible(await tlsRequest(`${tls.baseUrl}${path}`, { ...init, ca: first.cert }));
      const overH2 = visible(
        await tlsRequest(`${tls.baseUrl}${path}`, { ...init, ca: first.cert, http2: true }),
      );
      expect({ request: `${method} ${path}`, ...overH1 }).toEqual({
        request: `${method} ${path}`,
        ...expected,
      });
      expect({ request: `${method} ${path}`, ...overH2 }).toEqual({
        request: `${method} ${path}`,
        ...expected,
      });
    }
    // Guard against comparing two empty answers: the requests above did reach the routes.
    const page = await tlsRequest(`${tls.baseUrl}/`, { ca: first.cert, http2: true });
    expect(page.headers['content-type']).toBe('text/html; charset=utf-8');
    expect(page.body).toContain('<html');
  });

  it('publishes over HTTP/2 (WHIP) and plays over HTTPS/1.1 (WHEP): media flows, sessions end by DELETE', async () => {
    const publisher = new TestPublisher();
    const viewer = new TestViewer();
    try {
      const offer = await publisher.createOffer();
      const published: TlsResponse = await tlsRequest(`${tls.baseUrl}/whip/secure`, {
        method: 'POST',
        headers: { 'Content-Type': 'application/sdp' },
        body: offer,
        ca: first.cert,
        http2: true,
      });
      expect([published.status, published.protocol]).toEqual([201, 'h2']);
      expect(published.headers['content-type']).toBe('application/sdp');
      expect(published.headers.location).toMatch(/^\/whip\/secure\/[^/]+$/);
      expect(published.headers.etag).toBeDefined();
      await publisher.applyAnswer(published.body);

      const played = await viewer.play(tls.baseUrl, 'secure', { ca: first.cert });
      expect(played.status).toBe(201);
      expect(played.headers.get('location')).toMatch(/^\/whep\/secure\/[^/]+$/);
      await viewer.waitForFrames(10);

      const ended = await tlsRequest(`${tls.baseUrl}${played.headers.get('location')}`, {
        method: 'DELETE',
        ca: first.cert,
        http2: true,
      });
      expect(ended.status).toBe(200);
      const unpublished = await tlsRequest(`${tls.baseUrl}${published.headers.location}`, {
        method: 'DELETE',
        ca: first.cert,
      });
      expect(unpublished.status).toBe(200);
    } finally {
      viewer.close();
      publisher.close();
    }
  }, 60_000);
});

describe('certificate reload (a media node process)', () => {
  let mount: SecretMount;
  let node: NodeProcess;
  const first = makeCertificate('rtccdn-first');
  const second = makeCertificate('rtccdn-second');
  const third = makeCertificate('rtccdn-third');
  const all = [first.cert, second.cert, third.cert];

  const presented = async (http2 = false) =>
    (await tlsRequest(`${node.baseUrl}/readyz`, { ca: all, http2 })).fingerprint;
  const rejections = () =>
    node.logs.filter((line) => String(line.msg).startsWith('new TLS certificate/key not used'));

  beforeAll(async () => {
    mount = new SecretMount(first.cert, first.key);
    node = await spawnNode(
      {
        RTC_LISTEN_IP: '127.0.0.1',
        RTC_PORT: String(portBlock(1)),
        WORKERS: '1',
        PORT: String(await freeTcpPort()),
        TLS_CERT_FILE: mount.certFile,
        TLS_KEY_FILE: mount.keyFile,
      },
      undefined,
      { captureLogs: true },
    );
  }, 90_000);
  afterAll(async () => {
    await node?.stop();
    mount?.remove();
  }, 30_000);

  it('new connections get a renewed certificate without a restart; a mismatched pair is refused once and the old one kept', async () => {
    expect(node.baseUrl).toMatch(/^https:/);
    expect(await presented()).toBe(first.fingerprint);

    // A renewal (Kubernetes swaps the Secret's ..data symlink): new connections see it.
    mount.update(second.cert, second.key);
    expect(await eventually(async () => (await presented()) === second.fingerprint, 15_000)).toBe(true);
    expect(await presented(true)).toBe(second.fingerprint);

    // A certificate with another certificate's key: refused, logged once, the current pair stays.
    mount.update(third.cert, second.key);
    expect(await eventually(() => rejections().length > 0, 15_000)).toBe(true);
    mount.update(third.cert, second.key); // the same bad pair again (another swap): not logged again
    await sleep(1500);
    expect(await presented()).toBe(second.fingerprint);
    expect(await presented(true)).toBe(second.fingerprint);
    expect(rejections()).toHaveLength(1);
    expect(String(rejections()[0]!.msg)).toMatch(/is not the key of the certificate/);

    // Then the right key arrives: taken.
    mount.update(third.cert, third.key);
    expect(await eventually(async () => (await presented()) === third.fingerprint, 15_000)).toBe(true);
    expect(node.logs.some((line) => line.msg === 'TLS certificate reloaded: new connections use it')).toBe(
      true,
    );

    // An HTTP/2 connection left open does not hold SIGTERM up: the node exits 0.
    const session = connect(node.baseUrl, { ca: all });
    session.on('error', () => {});
    await new Promise((resolve, reject) => session.once('connect', resolve).once('error', reject));
    expect(await node.stop()).toBe(0);
    session.destroy();
  }, 60_000);
});

describe('TLS configuration errors (exit 2, one line)', () => {
  const certificate: TestCertificate = makeCertificate('rtccdn-config');
  const other = makeCertificate('rtccdn-other');
  const dir = mkdtempSync(join(tmpdir(), 'rtccdn-tls-config-'));
  const file = (name: string, text: string) => {
    writeFileSync(join(dir, name), text);
    return join(dir, name);
  };
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it.each([
    [
      'a certificate without a key',
      () => ({ TLS_CERT_FILE: file('a.crt', certificate.cert) }),
      /^rtccdn media-node: invalid configuration: TLS_KEY_FILE is required with TLS_CERT_FILE/,
    ],
    [
      'a missing file',
      () => ({ TLS_CERT_FILE: join(dir, 'missing.crt'), TLS_KEY_FILE: file('b.key', certificate.key) }),
      /^rtccdn media-node: invalid configuration: TLS_CERT_FILE \S+missing.crt cannot be read \(ENOENT\)$/,
    ],
    [
      'a file that is no certificate',
      () => ({
        TLS_CERT_FILE: file('c.crt', 'not a certificate'),
        TLS_KEY_FILE: file('c.key', certificate.key),
      }),
      /^rtccdn media-node: invalid configuration: TLS_CERT_FILE \S+ holds no PEM certificate/,
    ],
    [
      'the key of another certificate',
      () => ({ TLS_CERT_FILE: file('d.crt', certificate.cert), TLS_KEY_FILE: file('d.key', other.key) }),
      /^rtccdn media-node: invalid configuration: TLS_KEY_FILE \S+ is not the key of the certificate in TLS_CERT_FILE/,
    ],
  ])('refuses %s', (_what, env, message) => {
    const result = spawnSync(process.execPath, ['--import', 'tsx', MAIN], {
      env: { ...process.env, LOG_LEVEL: 'silent', ...env() },
      encoding: 'utf8',
      timeout: 20_000,
    });
    expect(result.stderr.trim().split('\n')).toEqual([expect.stringMatching(message)]);
    expect(result.status).toBe(2);
  });
});
