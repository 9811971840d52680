import { signRequest } from './hmac.js';

/** A failed node-to-node call, with what was called and what came back. */
export class InternalCallError extends Error {
  override name = 'InternalCallError';
  constructor(
    message: string,
    readonly status: number | undefined,
  ) {
    super(message);
  }
}

/** Signed JSON calls to other nodes' internal API (see hmac.ts). */
export class InternalClient {
  readonly #secret: string;
  readonly #timeoutMs: number;

  constructor(secret: string, timeoutMs = 5000) {
    this.#secret = secret;
    this.#timeoutMs = timeoutMs;
  }

  async request<T>(
    method: 'GET' | 'POST' | 'DELETE',
    baseUrl: string,
    path: string,
    body?: unknown,
  ): Promise<T> {
    const text = body === undefined ? '' : JSON.stringify(body);
    const headers: Record<string, string> = {
      Authorization: signRequest(this.#secret, { method, path, body: text }),
    };
    if (body !== undefined) headers['Content-Type'] = 'application/json';
    let response: Response;
    try {
      response = await fetch(`${baseUrl}${path}`, {
        method,
        headers,
        ...(body !== undefined ? { body: text } : {}),
        signal: AbortSignal.timeout(this.#timeoutMs),
      });
    } catch (error) {
      throw new InternalCallError(
        `${method} ${baseUrl}${path} failed: ${(error as Error).message}`,
        undefined,
      );
    }
    const reply = await response.text();
    if (!response.ok) {
      let reason = reply;
      try {
        reason = (JSON.parse(reply) as { message?: string }).message ?? reply;
      } catch {
        // not JSON: keep the text
      }
      throw new InternalCallError(
        `${method} ${baseUrl}${path} → ${response.status}: ${reason}`,
        response.status,
      );
    }
    return (reply === '' ? undefined : JSON.parse(reply)) as T;
  }
}
