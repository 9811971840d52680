import { readFileSync } from 'node:fs';
import { describe, expect, it } from '@jest/globals';
import Fastify from 'fastify';
import {
  ERROR_CODES,
  errorAnswer,
  installErrorHandler,
  RtccdnError,
} from '../../media-node/contract/errors.js';

describe('the error model', () => {
  it('documents every code, with its status, and nothing else', () => {
    const documented = [
      ...readFileSync(new URL('../../docs/errors.md', import.meta.url), 'utf8').matchAll(
        /^\| `([A-Z_]+)` +\| (\d{3}) +\|/gm,
      ),
    ].map(([, code, status]) => [code, Number(status)]);
    expect(documented).toEqual(Object.entries(ERROR_CODES));
  });

  it('answers a coded error with its status, headers and one body shape', () => {
    const answer = errorAnswer(
      new RtccdnError('STREAM_CLAIMED', 'taken', { data: { holder: 'origin-2' }, retryAfterMs: 1500 }),
    );
    expect(answer).toEqual({
      status: 409,
      unexpected: false,
      headers: { 'Retry-After': '2' },
      body: {
        statusCode: 409,
        error: 'Conflict',
        code: 'STREAM_CLAIMED',
        message: 'taken',
        data: { holder: 'origin-2' },
      },
    });
    expect(
      errorAnswer(new RtccdnError('ACCESS_KEY_REQUIRED', 'key', { challenge: 'Bearer realm="x"' })).headers,
    ).toEqual({
      'WWW-Authenticate': 'Bearer realm="x"',
    });
  });

  it('maps fastify’s own refusals to codes, and hides anything unexpected behind INTERNAL', () => {
    const tooLarge = Object.assign(new Error('Request body is too large'), {
      code: 'FST_ERR_CTP_BODY_TOO_LARGE',
      statusCode: 413,
    });
    expect(errorAnswer(tooLarge).body.code).toBe('BODY_TOO_LARGE');
    const bug = errorAnswer(new TypeError('secret detail'));
    expect(bug).toMatchObject({
      status: 500,
      unexpected: true,
      body: { code: 'INTERNAL', message: 'internal error' },
    });
  });

  it('is what a fastify server answers, for thrown errors and unknown routes', async () => {
    const app = Fastify();
    installErrorHandler(app);
    app.get('/refuse', async () => {
      throw new RtccdnError('NODE_DRAINING', 'go elsewhere', { retryAfterMs: 1000 });
    });
    const base = await app.listen({ host: '127.0.0.1', port: 0 });
    const refused = await fetch(`${base}/refuse`);
    expect(refused.status).toBe(503);
    expect(refused.headers.get('retry-after')).toBe('1');
    expect(await refused.json()).toEqual({
      statusCode: 503,
      error: 'Service Unavailable',
      code: 'NODE_DRAINING',
      message: 'go elsewhere',
    });
    const missing = await fetch(`${base}/nowhere?key=secret`);
    expect(await missing.json()).toEqual({
      statusCode: 404,
      error: 'Not Found',
      code: 'ROUTE_NOT_FOUND',
      message: 'no route GET /nowhere',
    });
    await app.close();
  });
});
