import {
  type FastifyError,
  type FastifyInstance,
  type FastifyReply,
  type FastifyRequest,
  LogController,
} from 'fastify';
import { ERROR_CODES, type ErrorCode, RtccdnError } from '../errors.js';

/** The JSON body of every error answer of every rtccdn server. */
export interface ErrorBody {
  statusCode: number;
  /** The HTTP reason phrase. */
  error: string;
  /** Stable, documented (docs/errors.md): what clients branch on. */
  code: ErrorCode;
  message: string;
  data?: Record<string, unknown>;
}

const REASONS: Record<number, string> = {
  400: 'Bad Request',
  401: 'Unauthorized',
  403: 'Forbidden',
  404: 'Not Found',
  405: 'Method Not Allowed',
  409: 'Conflict',
  413: 'Payload Too Large',
  415: 'Unsupported Media Type',
  421: 'Misdirected Request',
  422: 'Unprocessable Content',
  429: 'Too Many Requests',
  500: 'Internal Server Error',
  502: 'Bad Gateway',
  503: 'Service Unavailable',
};

/** What fastify itself refuses, in our codes. */
const FASTIFY_CODES: Record<string, ErrorCode> = {
  FST_ERR_CTP_INVALID_MEDIA_TYPE: 'UNSUPPORTED_MEDIA_TYPE',
  FST_ERR_CTP_BODY_TOO_LARGE: 'BODY_TOO_LARGE',
  FST_ERR_CTP_EMPTY_JSON_BODY: 'INVALID_REQUEST',
  FST_ERR_CTP_INVALID_JSON_BODY: 'INVALID_REQUEST',
};

/** The error answer for `error`: RtccdnErrors as they say, anything unexpected as INTERNAL. */
export function errorAnswer(error: unknown): {
  status: number;
  headers: Record<string, string>;
  body: ErrorBody;
  unexpected: boolean;
} {
  let coded: RtccdnError;
  let unexpected = false;
  if (error instanceof RtccdnError) coded = error;
  else {
    const fastify = error as Partial<FastifyError>;
    const mapped = fastify.code ? FASTIFY_CODES[fastify.code] : undefined;
    if (mapped) coded = new RtccdnError(mapped, fastify.message ?? mapped);
    else if (typeof fastify.statusCode === 'number' && fastify.statusCode < 500) {
      coded = new RtccdnError('INVALID_REQUEST', fastify.message ?? 'invalid request');
    } else {
      coded = new RtccdnError('INTERNAL', 'internal error');
      unexpected = true;
    }
  }
  const status = ERROR_CODES[coded.code];
  const { data, retryAfterMs, challenge, headers } = coded.details;
  return {
    status,
    unexpected,
    headers: {
      ...headers,
      ...(retryAfterMs !== undefined
        ? { 'Retry-After': String(Math.max(1, Math.ceil(retryAfterMs / 1000))) }
        : {}),
      ...(challenge ? { 'WWW-Authenticate': challenge } : {}),
    },
    body: {
      statusCode: status,
      error: REASONS[status] ?? 'Error',
      code: coded.code,
      message: coded.message,
      ...(data ? { data } : {}),
    },
  };
}

/**
 * Installs the error answers on `app` (call before registering routes): every thrown error,
 * and unknown routes, answer `{statusCode, error, code, message, data?}`. An unexpected error is
 * logged here, once, with its stack; the client learns nothing of it.
 */
export function installErrorHandler(app: FastifyInstance): void {
  app.setErrorHandler((error, request, reply) => {
    const answer = errorAnswer(error);
    if (answer.unexpected) {
      // Never log the query string: `?key=` carries viewers' access keys.
      request.log.error({ err: error, url: request.url.split('?')[0] }, 'request failed');
    }
    reply.code(answer.status).headers(answer.headers).send(answer.body);
  });
  app.setNotFoundHandler((request, reply) => {
    const answer = errorAnswer(
      new RtccdnError('ROUTE_NOT_FOUND', `no route ${request.method} ${request.url.split('?')[0]}`),
    );
    reply.code(answer.status).send(answer.body);
  });
}

/**
 * fastify's own per-request log lines, for every rtccdn server: off (each server logs its
 * requests itself, never with the query string, where viewers' keys travel), except what would
 * otherwise reach no log at all: an error raised after the response was sent (an `onResponse`
 * hook that throws).
 */
export class QuietRequestLog extends LogController {
  constructor() {
    super({ disableRequestLogging: true });
  }

  override requestCompleted(
    error: Error | null | undefined,
    request: FastifyRequest,
    reply: FastifyReply,
  ): void {
    if (!error) return;
    reply.log.error(
      { err: error, method: request.method, url: request.url.split('?')[0], status: reply.statusCode },
      'request failed after its response was sent',
    );
  }
}
