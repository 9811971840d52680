/**
 * InternalClient against an HTTP server in this process that plays the other node: what it
 * signs, which answers it trusts, what it makes of refusals, and the size cap on answers.
 */
import { spawn } from 'node:child_process';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import {
  type AddressInfo,
  connect,
  createServer as createTcpServer,
  type Server as TcpServer,
} from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import {
  deriveSigningKey,
  InternalCallError,
  InternalClient,
  MAX_INTERNAL_RESPONSE_BYTES,
  RESPONSE_SIGNATURE_HEADER,
  RequestVerifier,
  signResponse,
} from '../../media-node/contract/internal-api.js';

const SECRET = 'client-test-cluster-secret';
const key = deriveSigningKey(SECRET);

interface Received {
  method: string;
  url: string;
  headers: IncomingMessage['headers'];
  body: string;
  verdict: ReturnType<RequestVerifier['verify']>;
}

/** What the other node answers: status, body, and whether (or how) it signs. */
type Answer = (request: Received) => {
  status: number;
  body?: string;
  sign?: boolean | 'wrong';
  headers?: Record<string, string>;
  /** The body in parts, streamed without Content-Length (instead of `body`). */
  parts?: string[];
  /** A binary body (instead of `body`). */
  bytes?: Buffer;
};

describe('InternalClient', () => {
  let server: Server;
  let url: string;
  let answer: Answer = () => ({ status: 200, body: '{}' });
  const received: Received[] = [];
  const verifier = new RequestVerifier(key, 'node-b');

  beforeAll(async () => {
    server = createServer((request: IncomingMessage, response: ServerResponse) => {
      let body = '';
      request.on('data', (chunk: Buffer) => {
        body += chunk.toString('utf8');
      });
      request.on('end', () => {
        const verdict = verifier.verify(
          { method: request.method!, path: request.url!, body },
          request.headers.authorization,
        );
        const call: Received = {
          method: request.method!,
          url: request.url!,
          headers: request.headers,
          body,
          verdict,
        };
        received.push(call);
        const { status, body: answerBody = '', sign = true, headers = {}, parts, bytes } = answer(call);
        const text = bytes ?? (parts ? parts.join('') : answerBody);
        const nonce = verdict.ok ? verdict.nonce : 'none';
        if (sign) {
          response.setHeader(
            RESPONSE_SIGNATURE_HEADER,
            signResponse(sign === 'wrong' ? deriveSigningKey('another') : key, nonce, status, text),
          );
        }
        for (const [name, value] of Object.entries(headers)) response.setHeader(name, value);
        response.statusCode = status;
        if (parts) {
          for (const part of parts) response.write(part);
          response.end();
        } else response.end(text);
      });
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  });
  afterAll(() => new Promise((resolve) => server.close(resolve)));

  const target = () => ({ nodeId: 'node-b', internalUrl: url });
  const client = new InternalClient(SECRET);
  const failure = async (call: Promise<unknown>) => {
    try {
      await call;
    } catch (error) {
      expect(error).toBeInstanceOf(InternalCallError);
      return error as InternalCallError;
    }
    throw new Error('the call did not fail');
  };

  it('signs each call for its target, with its JSON body, and takes a signed JSON answer', async () => {
    answer = () => ({ status: 201, body: '{"relayId":"r1"}' });
    const result = await client.request<{ relayId: string }>('POST', target(), '/internal/v1/relays', {
      a: 1,
    });
    expect(result).toEqual({ relayId: 'r1' });
    const call = received.at(-1)!;
    expect(call.verdict.ok).toBe(true);
    expect(call).toMatchObject({ method: 'POST', url: '/internal/v1/relays', body: '{"a":1}' });
    expect(call.headers['content-type']).toBe('application/json');
  });

  it('sends no body and no Content-Type without a body, and takes an empty answer as undefined', async () => {
    answer = () => ({ status: 204 });
    expect(await client.request('DELETE', target(), '/internal/v1/relays/r1')).toBeUndefined();
    const call = received.at(-1)!;
    expect(call.verdict.ok).toBe(true);
    expect(call.body).toBe('');
    expect(call.headers['content-type']).toBeUndefined();
  });

  it('does not trust an answer that is not signed for its call', async () => {
    for (const sign of [false, 'wrong'] as const) {
      answer = () => ({ status: 200, body: '{"pipe":"mine"}', sign });
      const error = await failure(client.request('GET', target(), '/internal/v1/dump'));
      expect(error.message).toBe(
        `GET ${url}/internal/v1/dump → 200: the answer is not signed by a member of this cluster: {"pipe":"mine"}`,
      );
      expect(error.status).toBeUndefined();
    }
    // A call signed for another node is refused there, and that refusal is not signed for us.
    answer = (call) =>
      call.verdict.ok ? { status: 200, body: '{}' } : { status: 401, body: 'x'.repeat(300), sign: false };
    const error = await failure(
      client.request('GET', { nodeId: 'node-c', internalUrl: url }, '/internal/v1/dump'),
    );
    expect(error.message).toBe(
      `GET ${url}/internal/v1/dump → 401: the answer is not signed by a member of this cluster: ${'x'.repeat(200)}`,
    );
  });

  it('reports a signed refusal with its status, code and reason', async () => {
    answer = () => ({
      status: 404,
      body: JSON.stringify({ code: 'RELAY_NOT_FOUND', message: 'no relay r9' }),
    });
    const error = await failure(client.request('DELETE', target(), '/internal/v1/relays/r9'));
    expect(error).toMatchObject({
      message: `DELETE ${url}/internal/v1/relays/r9 → 404: no relay r9`,
      status: 404,
      code: 'RELAY_NOT_FOUND',
      reason: 'no relay r9',
      name: 'InternalCallError',
    });
    // A code this version does not know is not passed on; a body that is not JSON is the reason.
    answer = () => ({ status: 409, body: JSON.stringify({ code: 'SOMETHING_NEW', message: 'later' }) });
    expect(await failure(client.request('GET', target(), '/internal/v1/dump'))).toMatchObject({
      status: 409,
      code: undefined,
      reason: 'later',
    });
    answer = () => ({ status: 502, body: JSON.stringify({ code: 'UPSTREAM_FAILED' }) });
    expect(await failure(client.request('GET', target(), '/internal/v1/dump'))).toMatchObject({
      code: 'UPSTREAM_FAILED',
      reason: '{"code":"UPSTREAM_FAILED"}',
    });
    answer = () => ({ status: 503, body: 'proxy says no' });
    expect(await failure(client.request('GET', target(), '/internal/v1/dump'))).toMatchObject({
      message: `GET ${url}/internal/v1/dump → 503: proxy says no`,
      status: 503,
      code: undefined,
      reason: 'proxy says no',
    });
    // `code` must be one of ours, not any property of an object.
    answer = () => ({ status: 400, body: JSON.stringify({ code: 'toString', message: 'x' }) });
    expect((await failure(client.request('GET', target(), '/internal/v1/dump'))).code).toBeUndefined();
  });

  it('refuses answers over the size limit, declared or streamed', async () => {
    expect(MAX_INTERNAL_RESPONSE_BYTES).toBe(1024 * 1024);
    answer = () => ({ status: 200, body: 'x'.repeat(MAX_INTERNAL_RESPONSE_BYTES + 1) });
    const declared = await failure(client.request('GET', target(), '/internal/v1/dump'));
    expect(declared.message).toBe(
      `GET ${url}/internal/v1/dump failed: answer of ${MAX_INTERNAL_RESPONSE_BYTES + 1} bytes exceeds the ${MAX_INTERNAL_RESPONSE_BYTES}-byte limit`,
    );
    expect(declared.status).toBeUndefined();
    // A JSON string of exactly `bytes` bytes, in 64 KiB parts.
    const jsonOf = (bytes: number) => {
      const text = JSON.stringify('x'.repeat(bytes - 2));
      return Array.from({ length: Math.ceil(bytes / 65536) }, (_, i) =>
        text.slice(i * 65536, (i + 1) * 65536),
      );
    };
    answer = () => ({ status: 200, parts: jsonOf(MAX_INTERNAL_RESPONSE_BYTES + 1) });
    const streamed = await failure(client.request('GET', target(), '/internal/v1/dump'));
    expect(streamed.message).toBe(
      `GET ${url}/internal/v1/dump failed: answer exceeds the ${MAX_INTERNAL_RESPONSE_BYTES}-byte limit`,
    );
    // Exactly at the limit is fine, declared or streamed.
    answer = () => ({ status: 200, parts: jsonOf(MAX_INTERNAL_RESPONSE_BYTES) });
    expect(await client.request('GET', target(), '/internal/v1/dump')).toHaveLength(
      MAX_INTERNAL_RESPONSE_BYTES - 2,
    );
    answer = () => ({ status: 200, body: JSON.stringify('x'.repeat(MAX_INTERNAL_RESPONSE_BYTES - 2)) });
    expect(await client.request('GET', target(), '/internal/v1/dump')).toHaveLength(
      MAX_INTERNAL_RESPONSE_BYTES - 2,
    );
  });

  it('relays an answer as it came — bytes or error, status and headers — once its signature is checked', async () => {
    // Not valid UTF-8: signed and returned as bytes, not as text.
    const media = Buffer.from([0x00, 0x00, 0x00, 0x18, 0x66, 0x74, 0xff, 0xfe, 0x80, 0xc3]);
    answer = () => ({ status: 200, bytes: media, headers: { 'content-type': 'video/mp4' } });
    const path = '/internal/v1/hls/live/source/part3.1.m4s?t=x.y&ip=10.0.0.9';
    const relayed = await client.relay(target(), path, { maxBytes: 1024 });
    expect(relayed.status).toBe(200);
    expect(relayed.headers.get('content-type')).toBe('video/mp4');
    expect(relayed.body.equals(media)).toBe(true);
    expect(received.at(-1)).toMatchObject({ method: 'GET', url: path, body: '', verdict: { ok: true } });
    // An error answer is returned, not thrown: the caller passes it on.
    const refusal = JSON.stringify({ code: 'ACCESS_DENIED', message: 'no' });
    answer = () => ({ status: 403, body: refusal, headers: { 'retry-after': '1' } });
    const refused = await client.relay(target(), path, { maxBytes: 1024 });
    expect([refused.status, refused.body.toString(), refused.headers.get('retry-after')]).toEqual([
      403,
      refusal,
      '1',
    ]);
    // Unsigned, signed by another key, too big, or nobody there: a failed call.
    for (const sign of [false, 'wrong'] as const) {
      answer = () => ({ status: 200, bytes: media, sign });
      expect((await failure(client.relay(target(), path, { maxBytes: 1024 }))).message).toBe(
        `GET ${url}${path} → 200: the answer is not signed by a member of this cluster`,
      );
    }
    answer = () => ({ status: 200, bytes: media });
    expect((await failure(client.relay(target(), path, { maxBytes: media.length - 1 }))).message).toMatch(
      /exceeds the 9-byte limit$/,
    );
    // A port nothing listens on any more (port 1 is one fetch refuses to call at all).
    const closed = createServer();
    await new Promise<void>((resolve) => closed.listen(0, '127.0.0.1', resolve));
    const closedPort = (closed.address() as AddressInfo).port;
    await new Promise((resolve) => closed.close(resolve));
    const gone = await failure(
      client.relay({ nodeId: 'node-b', internalUrl: `http://127.0.0.1:${closedPort}` }, path, {
        maxBytes: 1024,
      }),
    );
    expect(gone.unreachable).toBe('refused');
  });

  it('does not follow redirects, and reports unreachable nodes and timeouts as failed calls', async () => {
    answer = () => ({ status: 302, headers: { location: 'http://127.0.0.1:1/elsewhere' } });
    const redirected = await failure(client.request('GET', target(), '/internal/v1/dump'));
    expect(redirected.message).toMatch(new RegExp(`^GET ${url}/internal/v1/dump failed: `));
    const unreachable = await failure(
      client.request('GET', { nodeId: 'node-b', internalUrl: 'http://127.0.0.1:1' }, '/internal/v1/dump'),
    );
    expect(unreachable.message).toMatch(/^GET http:\/\/127\.0\.0\.1:1\/internal\/v1\/dump failed: /);
    expect(unreachable.status).toBeUndefined();
  });

  it('says how a node did not answer: refused (nothing listens), timed out, or failed on the way', async () => {
    // A port nothing listens on (port 1 would not do: fetch refuses "bad ports" itself).
    const closed = createTcpServer();
    await new Promise<void>((resolve) => closed.listen(0, '127.0.0.1', resolve));
    const gone = `http://127.0.0.1:${(closed.address() as AddressInfo).port}`;
    await new Promise((resolve) => closed.close(resolve));
    const refused = await failure(
      client.request('GET', { nodeId: 'node-b', internalUrl: gone }, '/internal/v1/dump'),
    );
    expect([refused.unreachable, refused.message]).toEqual([
      'refused',
      `GET ${gone}/internal/v1/dump failed: connection refused`,
    ]);
    // A node that takes the connection and never answers; one that drops it at once.
    const sockets: import('node:net').Socket[] = [];
    const listen = async (onConnection: (socket: import('node:net').Socket) => void) => {
      const tcp: TcpServer = createTcpServer((socket) => {
        sockets.push(socket);
        onConnection(socket);
      });
      await new Promise<void>((resolve) => tcp.listen(0, '127.0.0.1', resolve));
      return { tcp, at: `http://127.0.0.1:${(tcp.address() as AddressInfo).port}` };
    };
    const silent = await listen(() => {});
    const dropping = await listen((socket) => socket.destroy());
    try {
      const slow = { nodeId: 'node-b', internalUrl: silent.at };
      // The per-call timeout, not the client's (two minutes here), ends these calls; a call still
      // waiting after 10 s (a liveness bound, not a speed target) did not use it.
      const patient = new InternalClient(SECRET, 120_000);
      const answered = <T>(call: Promise<T>) =>
        Promise.race([
          call,
          new Promise<never>((_resolve, reject) =>
            setTimeout(() => reject(new Error('still waiting after 10 s')), 10_000).unref(),
          ),
        ]);
      const timedOut = await failure(
        answered(patient.request('GET', slow, '/internal/v1/dump', undefined, { timeoutMs: 200 })),
      );
      expect([timedOut.unreachable, timedOut.message]).toEqual([
        'timeout',
        `GET ${silent.at}/internal/v1/dump failed: connection timed out`,
      ]);
      const relayTimedOut = await failure(
        answered(patient.relay(slow, '/internal/v1/hls/s/v/seg1.m4s', { timeoutMs: 200, maxBytes: 1024 })),
      );
      expect(relayTimedOut.unreachable).toBe('timeout');
      const dropped = await failure(
        client.request('GET', { nodeId: 'node-b', internalUrl: dropping.at }, '/internal/v1/dump'),
      );
      expect(dropped.unreachable).toBe('failed');
      expect(dropped.message).toMatch(
        new RegExp(`^GET ${dropping.at}/internal/v1/dump failed: (?!connection )`),
      );
    } finally {
      for (const socket of sockets) socket.destroy();
      await new Promise((resolve) => silent.tcp.close(resolve));
      await new Promise((resolve) => dropping.tcp.close(resolve));
    }
    // A node that answered is not "unreachable", whatever it said.
    answer = () => ({ status: 503, body: 'busy' });
    expect((await failure(client.request('GET', target(), '/internal/v1/dump'))).unreachable).toBeUndefined();
  });

  it('counts a connection the node never accepts (its SYNs dropped) as a timeout: the connect timeout, when the call allows more', async () => {
    // A listener with a backlog of one, in a process that is stopped: the kernel queues one
    // connection, then drops further SYNs, as on a dead host or behind a black-holing firewall.
    const listener = spawn(
      process.execPath,
      [
        '-e',
        "const s = require('node:net').createServer().listen({ port: 0, host: '127.0.0.1', backlog: 1 }, () => console.log(s.address().port));",
      ],
      { stdio: ['ignore', 'pipe', 'inherit'] },
    );
    const fillers: import('node:net').Socket[] = [];
    try {
      const port = await new Promise<number>((resolve) =>
        listener.stdout!.once('data', (data) => resolve(Number(String(data)))),
      );
      listener.kill('SIGSTOP');
      for (let i = 0; i < 3; i++) fillers.push(connect(port, '127.0.0.1').on('error', () => {}));
      await new Promise((resolve) => setTimeout(resolve, 200));
      const blackHole = `http://127.0.0.1:${port}`;
      // The call would wait two minutes; undici gives up connecting after 10 s.
      const patient = new InternalClient(SECRET, 120_000);
      const failed = await failure(
        patient.request('GET', { nodeId: 'node-b', internalUrl: blackHole }, '/internal/v1/dump'),
      );
      expect([failed.unreachable, failed.message]).toEqual([
        'timeout',
        `GET ${blackHole}/internal/v1/dump failed: connection timed out`,
      ]);
    } finally {
      for (const filler of fillers) filler.destroy();
      listener.kill('SIGKILL');
    }
  }, 30_000);

  it('passes on the data of an error answer only when it is a flat object of strings, numbers, booleans and string lists', async () => {
    const refusalWith = async (data: unknown) => {
      answer = () => ({
        status: 410,
        body: JSON.stringify({ code: 'SESSION_ENDED', message: 'ended', data }),
      });
      return (await failure(client.request('DELETE', target(), '/internal/v1/sessions/whep/s/x'))).data;
    };
    const flat = { reason: 'revoked: key-removed', at: 17, final: true, keys: ['a', 'b'] };
    expect(await refusalWith(flat)).toEqual(flat);
    expect(await refusalWith({})).toEqual({});
    for (const bad of [
      null,
      'text',
      7,
      ['a'],
      { nested: { a: 1 } },
      { list: [1, 2] },
      { list: ['a', 2] },
      { none: null },
    ])
      expect([bad, await refusalWith(bad)]).toEqual([bad, undefined]);
  });
});
