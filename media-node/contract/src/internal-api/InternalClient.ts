import { ERROR_CODES, type ErrorCode, type ErrorData } from '../errors.js';
import { deriveSigningKey, RESPONSE_SIGNATURE_HEADER, signRequest, verifyResponse } from './hmac.js';
import { KeySealer } from './KeySealer.js';

/**
 * Why a call got no answer at all: `refused` — nothing listens at the node's address (its process
 * is gone: the strongest sign of a dead node short of its registry TTL); `timeout` — no answer in
 * time (dead host, partition, or a node too busy); `failed` — anything else on the way.
 */
export type Unreachable = 'refused' | 'timeout' | 'failed';

/** A failed node-to-node call, with what was called and what came back. */
export class InternalCallError extends Error {
  override name = 'InternalCallError';
  constructor(
    message: string,
    readonly status: number | undefined,
    /** The error code (errors.ts) and message the other node answered with, when it sent them. */
    readonly code?: ErrorCode,
    readonly reason?: string,
    /** Set when the node did not answer at all, and how. */
    readonly unreachable?: Unreachable,
    /** The `data` of the other node's error answer (e.g. SESSION_ENDED's reason). */
    readonly data?: ErrorData,
  ) {
    super(message);
  }
}

/** How a fetch that got no answer failed (undici puts the socket error in `cause`). */
function unreachableKind(error: unknown): Unreachable {
  const name = (error as Error | undefined)?.name;
  if (name === 'TimeoutError' || name === 'AbortError') return 'timeout';
  const code = (error as { cause?: { code?: string } } | undefined)?.cause?.code;
  if (code === 'ECONNREFUSED') return 'refused';
  if (code === 'UND_ERR_CONNECT_TIMEOUT' || code === 'ETIMEDOUT') return 'timeout';
  return 'failed';
}

/** The node a call is for: its id is part of the signature, so the call is good for it alone. */
export interface InternalTarget {
  nodeId: string;
  internalUrl: string;
}

/** A relayed answer (relay()): its status, headers and body, signed by the node that made it. */
export interface RelayedAnswer {
  status: number;
  headers: Headers;
  body: Buffer;
}

/** Answers above this are refused: no internal answer comes near it (a dump is a few KiB). */
export const MAX_INTERNAL_RESPONSE_BYTES = 1024 * 1024;

/**
 * Signed JSON calls to other nodes' internal API (see hmac.ts): requests signed for their
 * target, answers accepted only when signed by a member of the cluster, and at most
 * MAX_INTERNAL_RESPONSE_BYTES. `sealer` protects key material inside bodies.
 */
export class InternalClient {
  readonly sealer: KeySealer;
  readonly #key: Buffer;
  readonly #timeoutMs: number;

  constructor(clusterSecret: string, timeoutMs = 5000) {
    this.#key = deriveSigningKey(clusterSecret);
    this.sealer = new KeySealer(clusterSecret);
    this.#timeoutMs = timeoutMs;
  }

  /**
   * Sends a signed call and reads its answer with `read`, then checks the answer's signature.
   * InternalCallError when the node does not answer (`unreachable`: refused, timed out, failed)
   * or the answer is not signed by a member of this cluster.
   */
  async #signedCall<B extends string | Buffer>(
    method: 'GET' | 'POST' | 'DELETE',
    target: InternalTarget,
    path: string,
    body: unknown,
    options: { timeoutMs?: number; read: (response: Response) => Promise<B> },
  ): Promise<{ response: Response; body: B }> {
    const text = body === undefined ? '' : JSON.stringify(body);
    const call = `${method} ${target.internalUrl}${path}`;
    const { authorization, nonce } = signRequest(this.#key, {
      method,
      path,
      target: target.nodeId,
      body: text,
    });
    const headers: Record<string, string> = { Authorization: authorization };
    if (body !== undefined) headers['Content-Type'] = 'application/json';
    let response: Response;
    let reply: B;
    try {
      response = await fetch(`${target.internalUrl}${path}`, {
        method,
        headers,
        ...(body !== undefined ? { body: text } : {}),
        signal: AbortSignal.timeout(options.timeoutMs ?? this.#timeoutMs),
        redirect: 'error',
      });
      reply = await options.read(response);
    } catch (error) {
      const unreachable = unreachableKind(error);
      throw new InternalCallError(
        `${call} failed: ${unreachable === 'failed' ? (error as Error).message : `connection ${unreachable === 'refused' ? 'refused' : 'timed out'}`}`,
        undefined,
        undefined,
        undefined,
        unreachable,
      );
    }
    if (
      !verifyResponse(
        this.#key,
        nonce,
        response.status,
        reply,
        response.headers.get(RESPONSE_SIGNATURE_HEADER),
      )
    ) {
      // Not trusted, so not acted on; a text answer is shown (shortened) because it usually
      // tells why (a 401 for clock skew, a proxy's error page).
      throw new InternalCallError(
        `${call} → ${response.status}: the answer is not signed by a member of this cluster${typeof reply === 'string' ? `: ${reply.slice(0, 200)}` : ''}`,
        undefined,
      );
    }
    return { response, body: reply };
  }

  /**
   * A GET whose answer — success or error, text or bytes — is passed on as it came (a public
   * request served by another node): returned whatever its status, once its signature is checked.
   * Throws InternalCallError when the node does not answer (`unreachable`), the answer is not
   * signed by a member of the cluster, or it exceeds `maxBytes`.
   */
  async relay(
    target: InternalTarget,
    path: string,
    options: { timeoutMs?: number; maxBytes: number },
  ): Promise<RelayedAnswer> {
    const { response, body } = await this.#signedCall('GET', target, path, undefined, {
      ...(options.timeoutMs !== undefined ? { timeoutMs: options.timeoutMs } : {}),
      read: (answer) => readCappedBytes(answer, options.maxBytes),
    });
    return { status: response.status, headers: response.headers, body };
  }

  /** `options.timeoutMs` overrides the client's timeout for this call (probes of a suspect node). */
  async request<T>(
    method: 'GET' | 'POST' | 'DELETE',
    target: InternalTarget,
    path: string,
    body?: unknown,
    options: { timeoutMs?: number } = {},
  ): Promise<T> {
    const call = `${method} ${target.internalUrl}${path}`;
    const { response, body: reply } = await this.#signedCall(method, target, path, body, {
      ...options,
      read: (answer) => readCapped(answer, MAX_INTERNAL_RESPONSE_BYTES),
    });
    if (!response.ok) {
      let reason = reply;
      let code: ErrorCode | undefined;
      let data: ErrorData | undefined;
      try {
        const body = JSON.parse(reply) as { message?: string; code?: string; data?: unknown };
        reason = body.message ?? reply;
        if (body.code && Object.hasOwn(ERROR_CODES, body.code)) code = body.code as ErrorCode;
        if (isErrorData(body.data)) data = body.data;
      } catch {
        // not JSON: keep the text
      }
      throw new InternalCallError(
        `${call} → ${response.status}: ${reason}`,
        response.status,
        code,
        reason,
        undefined,
        data,
      );
    }
    return (reply === '' ? undefined : JSON.parse(reply)) as T;
  }
}

/** An error body's `data`: a flat object of strings, numbers, booleans and string lists (errors.ts). */
function isErrorData(value: unknown): value is ErrorData {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) return false;
  return Object.values(value).every(
    (entry) =>
      ['string', 'number', 'boolean'].includes(typeof entry) ||
      (Array.isArray(entry) && entry.every((item) => typeof item === 'string')),
  );
}

/** The body as text, or an error once it exceeds `limit` bytes (the rest is not read). */
async function readCapped(response: Response, limit: number): Promise<string> {
  return (await readCappedBytes(response, limit)).toString('utf8');
}

/** The body, or an error once it exceeds `limit` bytes (the rest is not read). */
async function readCappedBytes(response: Response, limit: number): Promise<Buffer> {
  const declared = Number(response.headers.get('content-length') ?? '0');
  if (declared > limit) {
    await response.body?.cancel();
    throw new Error(`answer of ${declared} bytes exceeds the ${limit}-byte limit`);
  }
  if (!response.body) return Buffer.alloc(0);
  const reader = response.body.getReader();
  const chunks: Uint8Array[] = [];
  let size = 0;
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    size += value.byteLength;
    if (size > limit) {
      await reader.cancel();
      throw new Error(`answer exceeds the ${limit}-byte limit`);
    }
    chunks.push(value);
  }
  return Buffer.concat(chunks);
}
