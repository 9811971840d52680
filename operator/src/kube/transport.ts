/**
 * HTTP to the API server. This is the only file that uses @kubernetes/client-node at run time,
 * and only for what it is good at: reading kubeconfig / in-cluster configuration and applying
 * credentials (client certificates, bearer tokens that rotate, exec and OIDC plugins,
 * impersonation). Requests themselves go through node:http(s) with one keep-alive agent, so
 * that content types, timeouts and watch streams are under our control. What client-node
 * 2.0.1 would do instead (read in its dist/, unchanged from 1.4.0 unless said):
 * - its generated clients send JSON-patch by default and KubernetesObjectApi strategic merge
 *   (415 on custom resources), so the verbs stay ours (client.ts);
 * - applyToHTTPSOptions() now caches one https.Agent per cluster+user name (1.4.0 made one per
 *   call), but without keepAlive, so every request still opens a new TLS connection
 *   (Connection: close), and the cached agent keeps the first client certificate an exec
 *   plugin returned; its fetch path (applySecurityAuthentication) builds a new undici Agent
 *   per request. Hence the agent below, keyed by the TLS material itself.
 */
import { createHash } from 'node:crypto';
import http from 'node:http';
import https from 'node:https';
import { createInterface } from 'node:readline';
import { KubeConfig } from '@kubernetes/client-node';
import { KubeApiError } from './errors.js';

export type HttpMethod = 'GET' | 'POST' | 'PUT' | 'PATCH' | 'DELETE';

export interface KubeRequest {
  method: HttpMethod;
  /** Absolute API path, e.g. /apis/apps/v1/namespaces/default/statefulsets. */
  path: string;
  query?: Record<string, string | number | boolean | undefined>;
  body?: string;
  contentType?: string;
  /** Aborts the request (and a watch stream). */
  signal?: AbortSignal;
}

export interface KubeResponse {
  status: number;
  body: string;
}

/** An open streaming response (a watch): lines as they arrive. */
export interface KubeStream {
  status: number;
  /** The whole body when status is not 2xx; empty for a stream. */
  errorBody: string;
  lines: AsyncIterable<string>;
}

export interface KubeTransport {
  /** API server base URL (for logs). */
  readonly server: string;
  /** One request, whole response body. Rejects with KubeApiError(status 0) on network errors. */
  request(request: KubeRequest): Promise<KubeResponse>;
  /** A long-lived GET whose body is newline-delimited (watch). Ends when the server closes it. */
  stream(request: KubeRequest): Promise<KubeStream>;
  /** Closes idle keep-alive connections. */
  close(): void;
}

export interface KubeConfigSource {
  /** Path of a kubeconfig file; otherwise in-cluster config, otherwise ~/.kube/config. */
  kubeconfigPath?: string | undefined;
}

/** Loads the cluster configuration the way kubectl does (explicit file, in-cluster, default). */
export function loadKubeConfig(source: KubeConfigSource = {}): KubeConfig {
  const kc = new KubeConfig();
  if (source.kubeconfigPath) kc.loadFromFile(source.kubeconfigPath);
  else if (process.env.KUBERNETES_SERVICE_HOST) kc.loadFromCluster();
  else kc.loadFromDefault();
  if (!kc.getCurrentCluster()) {
    throw new Error(
      source.kubeconfigPath
        ? `kubeconfig ${source.kubeconfigPath} has no current cluster`
        : 'no cluster configured: set KUBECONFIG or run in a pod',
    );
  }
  return kc;
}

/** Default time limit of a non-watch request. */
const REQUEST_TIMEOUT_MS = 30_000;

export class KubeConfigTransport implements KubeTransport {
  readonly server: string;
  readonly #kc: KubeConfig;
  readonly #timeoutMs: number;
  #agent: { key: string; agent: http.Agent } | undefined;

  constructor(kc: KubeConfig, options: { timeoutMs?: number } = {}) {
    const cluster = kc.getCurrentCluster();
    if (!cluster) throw new Error('kubeconfig has no current cluster');
    this.server = cluster.server.replace(/\/+$/, '');
    this.#kc = kc;
    this.#timeoutMs = options.timeoutMs ?? REQUEST_TIMEOUT_MS;
  }

  static fromSource(source: KubeConfigSource = {}): KubeConfigTransport {
    return new KubeConfigTransport(loadKubeConfig(source));
  }

  async request(request: KubeRequest): Promise<KubeResponse> {
    const timeout = AbortSignal.timeout(this.#timeoutMs);
    const signal = request.signal ? AbortSignal.any([request.signal, timeout]) : timeout;
    const response = await this.#send({ ...request, signal });
    const chunks: Buffer[] = [];
    try {
      for await (const chunk of response) chunks.push(chunk as Buffer);
    } catch (error) {
      throw networkError(request, error);
    }
    return { status: response.statusCode ?? 0, body: Buffer.concat(chunks).toString('utf8') };
  }

  async stream(request: KubeRequest): Promise<KubeStream> {
    const response = await this.#send(request);
    const status = response.statusCode ?? 0;
    if (status < 200 || status >= 300) {
      const chunks: Buffer[] = [];
      for await (const chunk of response) chunks.push(chunk as Buffer);
      return { status, errorBody: Buffer.concat(chunks).toString('utf8'), lines: emptyLines() };
    }
    // Half-open connections are found by TCP keep-alive probes (and by the caller's watchdog).
    response.socket?.setKeepAlive(true, 30_000);
    const lines = createInterface({ input: response, crlfDelay: Number.POSITIVE_INFINITY });
    // readline ends on the input's 'end' only: a response destroyed mid-body (abort, reset)
    // emits 'close' without 'end', and the iteration below would wait forever.
    const endLines = (): void => lines.close();
    response.once('close', endLines);
    response.once('error', endLines);
    request.signal?.addEventListener('abort', endLines, { once: true });
    const iterate = async function* (): AsyncGenerator<string> {
      try {
        for await (const line of lines) {
          if (line.trim() !== '') yield line;
        }
      } catch (error) {
        throw networkError(request, error);
      } finally {
        request.signal?.removeEventListener('abort', endLines);
        lines.close();
        response.destroy();
      }
      // readline ends quietly when the response is destroyed mid-body: say so.
      if (!response.complete && !request.signal?.aborted) {
        throw networkError(request, new Error('connection closed before the end of the stream'));
      }
    };
    return { status, errorBody: '', lines: iterate() };
  }

  close(): void {
    this.#agent?.agent.destroy();
    this.#agent = undefined;
  }

  async #send(request: KubeRequest): Promise<http.IncomingMessage> {
    const url = new URL(this.server + request.path);
    for (const [key, value] of Object.entries(request.query ?? {})) {
      if (value !== undefined) url.searchParams.set(key, String(value));
    }
    const options: https.RequestOptions = {};
    // Fills headers (Authorization, Impersonate-User), TLS material and an agent; re-run per
    // request because tokens rotate (in-cluster service account tokens, exec plugins).
    await this.#kc.applyToHTTPSOptions(options);
    const headers: http.OutgoingHttpHeaders = {
      ...((options.headers ?? {}) as http.OutgoingHttpHeaders),
      Accept: 'application/json',
    };
    if (options.auth) {
      headers.Authorization = `Basic ${Buffer.from(options.auth).toString('base64')}`;
    }
    if (request.body !== undefined) {
      headers['Content-Type'] = request.contentType ?? 'application/json';
      headers['Content-Length'] = Buffer.byteLength(request.body);
    }
    const agent = this.#agentFor(url, options);
    const send = url.protocol === 'http:' ? http.request : https.request;
    return new Promise<http.IncomingMessage>((resolve, reject) => {
      const req = send(url, { method: request.method, headers, agent }, resolve);
      const onAbort = (): void => {
        req.destroy(request.signal?.reason instanceof Error ? request.signal.reason : new Error('aborted'));
      };
      if (request.signal?.aborted) onAbort();
      request.signal?.addEventListener('abort', onAbort, { once: true });
      req.on('close', () => request.signal?.removeEventListener('abort', onAbort));
      req.on('error', (error) => reject(networkError(request, error)));
      req.end(request.body);
    });
  }

  /**
   * One keep-alive agent for as long as the TLS material stays the same (client-node's own
   * agent closes the connection after each request, see the top of this file). A proxy agent
   * from the kubeconfig is used as given.
   */
  #agentFor(url: URL, options: https.RequestOptions): http.Agent {
    const cluster = this.#kc.getCurrentCluster();
    if (cluster?.proxyUrl && options.agent instanceof http.Agent) return options.agent;
    const tls = {
      ca: options.ca,
      cert: options.cert,
      key: options.key,
      pfx: options.pfx,
      passphrase: options.passphrase,
      servername: options.servername,
      ...(options.rejectUnauthorized === undefined ? {} : { rejectUnauthorized: options.rejectUnauthorized }),
    };
    const key = createHash('sha256')
      .update(url.protocol)
      .update(
        JSON.stringify(tls, (_name, value) => (Buffer.isBuffer(value) ? value.toString('base64') : value)),
      )
      .digest('hex');
    if (this.#agent?.key !== key) {
      this.#agent?.agent.destroy();
      const agent =
        url.protocol === 'http:'
          ? new http.Agent({ keepAlive: true })
          : new https.Agent({ ...tls, keepAlive: true });
      this.#agent = { key, agent };
    }
    return this.#agent.agent;
  }
}

function networkError(request: KubeRequest, cause: unknown): KubeApiError {
  const message = cause instanceof Error ? cause.message : String(cause);
  return new KubeApiError(`${request.method} ${request.path}`, 0, 'NetworkError', message, { cause });
}

async function* emptyLines(): AsyncGenerator<string> {}
