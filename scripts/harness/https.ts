import { execFileSync } from 'node:child_process';
import { X509Certificate } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { constants as h2, connect as http2Connect } from 'node:http2';
import { request as httpsRequest } from 'node:https';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { TLSSocket } from 'node:tls';

/** A self-signed certificate and its key (PEM), made by the openssl CLI for a test. */
export interface TestCertificate {
  cert: string;
  key: string;
  /** SHA-256 fingerprint, as X509Certificate#fingerprint256 and TLSSocket#getPeerCertificate show it. */
  fingerprint: string;
}

/**
 * Makes a fresh self-signed certificate (EC P-256, 1 day) for `commonName`, valid for
 * localhost, 127.0.0.1 and the extra IP addresses given (subjectAltName).
 */
export function makeCertificate(commonName: string, addresses: string[] = []): TestCertificate {
  const san = ['DNS:localhost', 'IP:127.0.0.1', ...addresses.map((address) => `IP:${address}`)].join(',');
  const dir = mkdtempSync(join(tmpdir(), 'rtccdn-cert-'));
  try {
    execFileSync(
      'openssl',
      [
        'req',
        '-x509',
        '-newkey',
        'ec',
        '-pkeyopt',
        'ec_paramgen_curve:prime256v1',
        '-nodes',
        '-days',
        '1',
        '-subj',
        `/CN=${commonName}`,
        '-addext',
        `subjectAltName=${san}`,
        '-keyout',
        join(dir, 'key.pem'),
        '-out',
        join(dir, 'cert.pem'),
      ],
      { stdio: ['ignore', 'ignore', 'pipe'] },
    );
    const cert = readFileSync(join(dir, 'cert.pem'), 'utf8');
    const key = readFileSync(join(dir, 'key.pem'), 'utf8');
    return { cert, key, fingerprint: new X509Certificate(cert).fingerprint256 };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}
export interface TlsResponse {
  status: number;
  /** Lower-case names; repeated headers joined with ", ". */
  headers: Record<string, string>;
  body: string;
  /** The protocol ALPN settled on: 'h2' or 'http/1.1'. */
  protocol: string;
  /** SHA-256 fingerprint of the certificate the server presented on this (new) connection. */
  fingerprint: string;
}

export interface TlsRequestOptions {
  method?: string;
  headers?: Record<string, string>;
  body?: string;
  /** The certificate(s) to trust (the test's self-signed one). */
  ca: string | string[];
  /** Offer HTTP/2 (node:http2 client) instead of HTTP/1.1 only (node:https). */
  http2?: boolean;
}

/** One request on a new TLS connection (never pooled: each sees the server's current certificate). */
export function tlsRequest(url: string, options: TlsRequestOptions): Promise<TlsResponse> {
  return options.http2 ? h2Request(url, options) : h1Request(url, options);
}

function h1Request(url: string, options: TlsRequestOptions): Promise<TlsResponse> {
  const body = options.body ?? '';
  return new Promise((resolve, reject) => {
    const outgoing = httpsRequest(
      url,
      {
        method: options.method ?? 'GET',
        agent: false,
        ca: options.ca,
        // Passed on to tls.connect (as curl --http1.1 offers it); absent from the https typings.
        ...({ ALPNProtocols: ['http/1.1'] } as object),
        timeout: 15_000,
        headers: { ...(body ? { 'Content-Length': Buffer.byteLength(body) } : {}), ...options.headers },
      },
      (response) => {
        const socket = response.socket as TLSSocket;
        const fingerprint = socket.getPeerCertificate().fingerprint256;
        const protocol = socket.alpnProtocol || 'http/1.1';
        const chunks: Buffer[] = [];
        response.on('data', (chunk: Buffer) => chunks.push(chunk));
        response.on('error', reject);
        response.on('end', () => {
          const headers: Record<string, string> = {};
          for (const [name, value] of Object.entries(response.headers)) {
            if (value !== undefined) headers[name] = Array.isArray(value) ? value.join(', ') : value;
          }
          resolve({
            status: response.statusCode ?? 0,
            headers,
            body: Buffer.concat(chunks).toString('utf8'),
            protocol,
            fingerprint,
          });
        });
      },
    );
    outgoing.on('timeout', () => outgoing.destroy(new Error(`${url}: no answer within 15 s`)));
    outgoing.on('error', reject);
    outgoing.end(body);
  });
}

function h2Request(url: string, options: TlsRequestOptions): Promise<TlsResponse> {
  const target = new URL(url);
  const body = options.body ?? '';
  return new Promise((resolve, reject) => {
    const session = http2Connect(target.origin, { ca: options.ca });
    session.on('error', reject);
    session.setTimeout(15_000, () => session.destroy(new Error(`${url}: no answer within 15 s`)));
    const stream = session.request({
      [h2.HTTP2_HEADER_METHOD]: options.method ?? 'GET',
      [h2.HTTP2_HEADER_PATH]: `${target.pathname}${target.search}`,
      ...(body ? { 'content-length': String(Buffer.byteLength(body)) } : {}),
      ...Object.fromEntries(
        Object.entries(options.headers ?? {}).map(([name, value]) => [name.toLowerCase(), value]),
      ),
    });
    const headers: Record<string, string> = {};
    let status = 0;
    stream.on('response', (received) => {
      for (const [name, value] of Object.entries(received)) {
        if (name === h2.HTTP2_HEADER_STATUS) status = Number(value);
        else if (value !== undefined && !name.startsWith(':')) {
          headers[name] = Array.isArray(value) ? value.join(', ') : String(value);
        }
      }
    });
    const chunks: Buffer[] = [];
    stream.on('data', (chunk: Buffer) => chunks.push(chunk));
    stream.on('error', reject);
    stream.on('end', () => {
      const socket = session.socket as TLSSocket;
      const fingerprint = socket.getPeerCertificate().fingerprint256;
      const protocol = session.alpnProtocol ?? '';
      session.close();
      resolve({ status, headers, body: Buffer.concat(chunks).toString('utf8'), protocol, fingerprint });
    });
    if (body) stream.end(body);
  });
}
