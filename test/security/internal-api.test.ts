/**
 * The node-to-node API as a pod in the cluster would attack it: calls are good only for the node
 * they were signed for, once, unaltered and on time; answers must be signed by a member; relay
 * pipes' SRTP keys never cross the wire in the clear; the registry cannot point signed calls at
 * host names. Real node processes, real Redis.
 */

import { readFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, describe, expect, it } from '@jest/globals';
import { Redis } from 'ioredis';
import {
  deriveSigningKey,
  InternalClient,
  KeySealer,
  RESPONSE_SIGNATURE_HEADER,
  RequestVerifier,
  signRequest,
  signResponse,
  verifyResponse,
} from '../../media-node/contract/internal-api.js';
import { ClusterKeys, InternalUrlSchema } from '../../media-node/contract/redis.js';
import { TEST_CLUSTER_SECRET } from '../../scripts/harness/cluster.js';
import { useTestCluster } from '../../scripts/harness/cluster-fixture.js';
import { postSdp } from '../../scripts/harness/peers.js';
import { rawRequest } from '../../scripts/harness/raw-http.js';

const whepOffer = readFileSync(new URL('../fixtures/libwebrtc-whep-offer.sdp', import.meta.url), 'utf8');
const key = deriveSigningKey(TEST_CLUSTER_SECRET);

describe('node-to-node API', () => {
  const fixture = useTestCluster(
    {},
    { id: 'edge-a', role: 'edge', region: 'r' },
    { id: 'edge-b', role: 'edge', region: 'r' },
  );
  const servers: Server[] = [];
  afterAll(() => {
    for (const server of servers) server.close();
  });

  const drain = (node: string, authorization: string, options: { body?: string; path?: string } = {}) =>
    rawRequest(fixture.internalUrl(node), 'POST', options.path ?? '/internal/v1/drain', {
      headers: { 'Content-Type': 'application/json', Authorization: authorization },
      body: options.body ?? '{"draining":false}',
    });
  const signed = (
    target: string,
    body = '{"draining":false}',
    path = '/internal/v1/drain',
    now = Date.now(),
  ) => signRequest(key, { method: 'POST', path, target, body }, now).authorization;

  it('answers a call signed for it, once, and signs the answer for that call', async () => {
    const { authorization, nonce } = signRequest(key, {
      method: 'POST',
      path: '/internal/v1/drain',
      target: 'edge-a',
      body: '{"draining":false}',
    });
    const answer = await drain('edge-a', authorization);
    expect(answer.status).toBe(200);
    expect(verifyResponse(key, nonce, 200, answer.body, answer.headers[RESPONSE_SIGNATURE_HEADER])).toBe(
      true,
    );
    expect(
      verifyResponse(key, 'another-nonce', 200, answer.body, answer.headers[RESPONSE_SIGNATURE_HEADER]),
    ).toBe(false);
    const replayed = await drain('edge-a', authorization);
    expect(replayed.status).toBe(401);
    expect(JSON.parse(replayed.body).message).toMatch(/replayed/);
  });

  it.each([
    ['made for another node', () => drain('edge-b', signed('edge-a')), /another node/],
    [
      'outside the clock-skew window',
      () => drain('edge-a', signed('edge-a', undefined, undefined, Date.now() - 60_000)),
      /clock skew/,
    ],
    [
      'with a tampered body',
      () => drain('edge-a', signed('edge-a', '{"draining":false}'), { body: '{"draining":true}' }),
      /bad signature/,
    ],
    [
      'with a tampered path',
      () =>
        drain('edge-a', signed('edge-a', '{"draining":true}', '/internal/v1/dump'), {
          body: '{"draining":true}',
        }),
      /bad signature/,
    ],
    [
      'signed with another secret',
      () =>
        drain(
          'edge-a',
          signRequest(deriveSigningKey('another-cluster-secret'), {
            method: 'POST',
            path: '/internal/v1/drain',
            target: 'edge-a',
            body: '{"draining":false}',
          }).authorization,
        ),
      /bad signature/,
    ],
  ])('refuses a call %s (401) and does nothing', async (_label, call, reason) => {
    const answer = await call();
    expect(answer.status).toBe(401);
    expect(JSON.parse(answer.body).message).toMatch(reason);
    expect((await fetch(`${fixture.url('edge-a')}/readyz`)).status).toBe(200);
    expect((await fetch(`${fixture.url('edge-b')}/readyz`)).status).toBe(200);
  });

  it('refuses a malformed or stale signature before reading the body', async () => {
    const huge = JSON.stringify({ padding: 'x'.repeat(2 * 1024 * 1024) });
    // Beyond the body limit (413) had the body been read; 401 because it was not.
    expect((await drain('edge-a', 'RTCCDN-HMAC-SHA256 nonsense', { body: huge })).status).toBe(401);
    expect(
      (await drain('edge-a', signed('edge-a', huge, undefined, Date.now() - 60_000), { body: huge })).status,
    ).toBe(401);
  });

  /** A member-looking HTTP server that answers as `answer` says. */
  async function fakeNode(
    answer: (nonce: string | undefined, body: string) => { status: number; body: string; sign: boolean },
  ) {
    const requests: string[] = [];
    const verifier = new RequestVerifier(key, 'fake');
    const server = createServer((request, response) => {
      const chunks: Buffer[] = [];
      request.on('data', (chunk: Buffer) => chunks.push(chunk));
      request.on('end', () => {
        const body = Buffer.concat(chunks).toString('utf8');
        requests.push(body);
        const verdict = verifier.verify(
          { method: request.method ?? '', path: request.url ?? '', body },
          request.headers.authorization,
        );
        const reply = answer(verdict.ok ? verdict.nonce : undefined, body);
        response.writeHead(reply.status, {
          'Content-Type': 'application/json',
          ...(reply.sign && verdict.ok
            ? { [RESPONSE_SIGNATURE_HEADER]: signResponse(key, verdict.nonce, reply.status, reply.body) }
            : {}),
        });
        response.end(reply.body);
      });
    });
    servers.push(server);
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    return {
      requests,
      target: { nodeId: 'fake', internalUrl: `http://127.0.0.1:${(server.address() as AddressInfo).port}` },
    };
  }

  it('refuses answers that are not signed by a member, and answers over the size limit', async () => {
    const client = new InternalClient(TEST_CLUSTER_SECRET);
    const unsigned = await fakeNode(() => ({ status: 200, body: '{"draining":true}', sign: false }));
    await expect(
      client.request('POST', unsigned.target, '/internal/v1/drain', { draining: true }),
    ).rejects.toThrow(/not signed by a member of this cluster/);
    const huge = await fakeNode(() => ({
      status: 200,
      body: JSON.stringify({ x: 'y'.repeat(2 * 1024 * 1024) }),
      sign: true,
    }));
    await expect(client.request('GET', huge.target, '/internal/v1/dump')).rejects.toThrow(/limit/);
    const fine = await fakeNode(() => ({ status: 200, body: '{"ok":true}', sign: true }));
    await expect(client.request('GET', fine.target, '/internal/v1/dump')).resolves.toEqual({ ok: true });
  });

  it('sends relay pipes’ SRTP keys sealed with the cluster secret, never in the clear', async () => {
    // A stream claimed (by hand, in the registry layout) by a "node" that records what it gets.
    const source = await fakeNode(() => ({
      status: 404,
      body: '{"statusCode":404,"message":"gone"}',
      sign: true,
    }));
    const keys = new ClusterKeys();
    const redis = new Redis(fixture.redis.url);
    try {
      await redis.set(
        keys.stream('sealed'),
        JSON.stringify({
          v: 1,
          name: 'sealed',
          nodeId: 'fake',
          region: 'r',
          internalUrl: source.target.internalUrl,
          claimId: 'c1',
          startedAt: Date.now(),
          kinds: ['video'],
        }),
        'PX',
        10_000,
      );
      expect(
        (await postSdp(`${fixture.url('edge-a')}/whep/sealed`, whepOffer)).status,
      ).toBeGreaterThanOrEqual(400);
    } finally {
      redis.disconnect();
    }
    expect(source.requests).toHaveLength(1);
    const request = JSON.parse(source.requests[0]!);
    expect(JSON.stringify(request)).not.toContain('keyBase64');
    const { cryptoSuite, sealedKey } = request.pipe.srtpParameters;
    const opened = new KeySealer(TEST_CLUSTER_SECRET).open(sealedKey, `srtp ${cryptoSuite}`);
    expect(Buffer.from(opened, 'base64').length).toBeGreaterThanOrEqual(30);
    expect(() => new KeySealer('another-cluster-secret').open(sealedKey, `srtp ${cryptoSuite}`)).toThrow(
      /does not open/,
    );
  });

  it('does not call internal URLs from the registry that are not http(s)://IP:port', async () => {
    for (const url of [
      'http://evil.example:8081',
      'http://10.0.0.1:8081/x',
      'http://user:pw@10.0.0.1:8081',
      'file:///etc/passwd',
      'http://10.0.0.1',
      'http://300.1.1.1:80',
    ]) {
      expect(`${url} ${InternalUrlSchema.safeParse(url).success}`).toBe(`${url} false`);
    }
    for (const url of ['http://10.0.0.1:8081', 'https://[fd00::1]:8443']) {
      expect(`${url} ${InternalUrlSchema.safeParse(url).success}`).toBe(`${url} true`);
    }
    const redis = new Redis(fixture.redis.url);
    const keys = new ClusterKeys();
    try {
      await redis.set(
        keys.stream('named'),
        JSON.stringify({
          v: 1,
          name: 'named',
          nodeId: 'fake',
          region: 'r',
          internalUrl: 'http://localhost:9',
          claimId: 'c2',
          startedAt: Date.now(),
          kinds: ['video'],
        }),
        'PX',
        10_000,
      );
      // The record is not one the edge accepts: the stream is not live as far as it knows.
      expect((await postSdp(`${fixture.url('edge-a')}/whep/named`, whepOffer)).status).toBe(404);
    } finally {
      redis.disconnect();
    }
  });
});
