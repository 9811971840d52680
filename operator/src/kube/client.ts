/**
 * The operator's Kubernetes client: the handful of verbs controllers use, for any resource type,
 * with the content types right (server-side apply, merge patch) and every failure turned into a
 * KubeApiError that names the operation and carries the server's Status reason.
 *
 * Objects go in and come out as plain JSON (`unknown` out): callers parse what they read with
 * zod (kube/objects.ts, api/v1alpha1.ts).
 */
import { z } from 'zod';
import { KubeApiError, StatusSchema } from './errors.js';
import { ListSchema } from './objects.js';
import { apiVersionOf, type ResourceType, resourceName, resourcePath } from './resources.js';
import type { KubeRequest, KubeTransport } from './transport.js';

/** Field manager of everything the operator applies (server-side apply owns fields per manager). */
export const FIELD_MANAGER = 'rtccdn-operator';

const APPLY_PATCH = 'application/apply-patch+yaml';
const MERGE_PATCH = 'application/merge-patch+json';

export interface ListOptions {
  labelSelector?: string | undefined;
  fieldSelector?: string | undefined;
  /** Page size; the client follows `continue` until the end. */
  limit?: number;
  signal?: AbortSignal | undefined;
}

export interface ListResult {
  items: unknown[];
  resourceVersion: string;
}

export interface WatchOptions {
  resourceVersion: string;
  labelSelector?: string | undefined;
  /** The server ends the watch after this many seconds (it picks 30-60 min when unset). */
  timeoutSeconds?: number | undefined;
  allowWatchBookmarks?: boolean;
}

const WatchEventSchema = z.object({
  type: z.enum(['ADDED', 'MODIFIED', 'DELETED', 'BOOKMARK', 'ERROR']),
  object: z.unknown(),
});
export type WatchEvent = z.output<typeof WatchEventSchema>;

/** Per-request options. */
export interface RequestOptions {
  /** Aborts this request (e.g. a deadline). */
  signal?: AbortSignal | undefined;
}

export interface ApplyOptions {
  fieldManager?: string;
  /** Take fields owned by other managers (default true: the operator is the authority). */
  force?: boolean;
  subresource?: string;
}

export interface DeleteOptions {
  /** Delete only this incarnation (uid) / version of the object. */
  preconditions?: { uid?: string; resourceVersion?: string };
  propagationPolicy?: 'Foreground' | 'Background' | 'Orphan';
}

/** Any object to write: the client adds apiVersion and kind from the resource type. */
export interface ObjectToWrite {
  metadata: {
    name?: string | undefined;
    namespace?: string | undefined;
    resourceVersion?: string | undefined;
  };
}

export class KubeClient {
  readonly transport: KubeTransport;
  /** Aborts every request of this client (see bound()). */
  readonly #signal: AbortSignal | undefined;

  constructor(transport: KubeTransport, signal?: AbortSignal) {
    this.transport = transport;
    this.#signal = signal;
  }

  /**
   * The same client, with every request (and watch) aborted when `signal` aborts: what a
   * leadership term runs on, so that nothing it started outlives it.
   */
  bound(signal: AbortSignal): KubeClient {
    return new KubeClient(this.transport, this.#signal ? AbortSignal.any([this.#signal, signal]) : signal);
  }

  /** The client's signal combined with a request's own. */
  #withSignal(request: KubeRequest): KubeRequest {
    const signals = [this.#signal, request.signal].filter((signal) => signal !== undefined);
    if (signals.length === 0) return request;
    return { ...request, signal: signals.length === 1 ? signals[0] : AbortSignal.any(signals) };
  }

  /** The object, or undefined when it does not exist. */
  async get(
    type: ResourceType,
    namespace: string | undefined,
    name: string,
    options: RequestOptions = {},
  ): Promise<unknown> {
    try {
      return await this.#json(`GET ${describe(type, namespace, name)}`, {
        method: 'GET',
        path: resourcePath(type, namespace, name),
        ...(options.signal ? { signal: options.signal } : {}),
      });
    } catch (error) {
      if (error instanceof KubeApiError && error.status === 404) return undefined;
      throw error;
    }
  }

  /** Every object (all pages) and the list's resourceVersion, to watch from. */
  async list(
    type: ResourceType,
    namespace: string | undefined,
    options: ListOptions = {},
  ): Promise<ListResult> {
    const items: unknown[] = [];
    let continueToken: string | undefined;
    let resourceVersion = '';
    do {
      const page = ListSchema.parse(
        await this.#json(`LIST ${describe(type, namespace)}`, {
          method: 'GET',
          path: resourcePath(type, namespace),
          query: {
            labelSelector: options.labelSelector,
            fieldSelector: options.fieldSelector,
            limit: options.limit ?? 500,
            continue: continueToken,
          },
          ...(options.signal ? { signal: options.signal } : {}),
        }),
      );
      items.push(...(page.items ?? []));
      continueToken = page.metadata.continue || undefined;
      resourceVersion = page.metadata.resourceVersion ?? resourceVersion;
    } while (continueToken);
    return { items, resourceVersion };
  }

  async create<T extends ObjectToWrite>(
    type: ResourceType,
    object: T,
    options: RequestOptions = {},
  ): Promise<unknown> {
    const namespace = object.metadata.namespace;
    return this.#json(`CREATE ${describe(type, namespace, object.metadata.name ?? '(generated)')}`, {
      method: 'POST',
      path: resourcePath(type, namespace),
      body: JSON.stringify({ apiVersion: apiVersionOf(type), kind: type.kind, ...object }),
      ...(options.signal ? { signal: options.signal } : {}),
    });
  }

  /**
   * Server-side apply: the server merges `object` into what exists (or creates it), and the
   * fields in `object` become owned by the field manager. Fields the manager applied before and
   * left out now are removed. An unchanged apply is a no-op (no new resourceVersion).
   */
  async apply<T extends ObjectToWrite & { metadata: { name: string } }>(
    type: ResourceType,
    object: T,
    options: ApplyOptions = {},
  ): Promise<unknown> {
    const { name, namespace } = object.metadata;
    const subresource = options.subresource ? `/${options.subresource}` : '';
    return this.#json(`APPLY ${describe(type, namespace, name)}${subresource}`, {
      method: 'PATCH',
      path: resourcePath(type, namespace, name, options.subresource),
      query: { fieldManager: options.fieldManager ?? FIELD_MANAGER, force: options.force ?? true },
      // JSON is YAML: the apply content type takes either.
      body: JSON.stringify({ apiVersion: apiVersionOf(type), kind: type.kind, ...object }),
      contentType: APPLY_PATCH,
    });
  }

  /** JSON merge patch (RFC 7386): maps merge, lists are replaced, null deletes a key. */
  async mergePatch(
    type: ResourceType,
    namespace: string | undefined,
    name: string,
    patch: unknown,
    options: { subresource?: string; fieldManager?: string } = {},
  ): Promise<unknown> {
    const subresource = options.subresource ? `/${options.subresource}` : '';
    return this.#json(`PATCH ${describe(type, namespace, name)}${subresource}`, {
      method: 'PATCH',
      path: resourcePath(type, namespace, name, options.subresource),
      query: { fieldManager: options.fieldManager ?? FIELD_MANAGER },
      body: JSON.stringify(patch),
      contentType: MERGE_PATCH,
    });
  }

  /**
   * Writes `.status` through the status subresource (merge patch): the spec is untouched and
   * metadata.generation does not change.
   */
  patchStatus(
    type: ResourceType,
    namespace: string | undefined,
    name: string,
    status: unknown,
  ): Promise<unknown> {
    return this.mergePatch(type, namespace, name, { status }, { subresource: 'status' });
  }

  /** PUT: replaces the object; with metadata.resourceVersion set, fails with Conflict if it changed. */
  async replace<T extends ObjectToWrite & { metadata: { name: string } }>(
    type: ResourceType,
    object: T,
    options: RequestOptions = {},
  ): Promise<unknown> {
    const { name, namespace } = object.metadata;
    return this.#json(`UPDATE ${describe(type, namespace, name)}`, {
      method: 'PUT',
      path: resourcePath(type, namespace, name),
      query: { fieldManager: FIELD_MANAGER },
      body: JSON.stringify({ apiVersion: apiVersionOf(type), kind: type.kind, ...object }),
      ...(options.signal ? { signal: options.signal } : {}),
    });
  }

  /** Deletes the object; false if it did not exist. */
  async delete(
    type: ResourceType,
    namespace: string | undefined,
    name: string,
    options: DeleteOptions = {},
  ): Promise<boolean> {
    try {
      await this.#json(`DELETE ${describe(type, namespace, name)}`, {
        method: 'DELETE',
        path: resourcePath(type, namespace, name),
        body: JSON.stringify({
          apiVersion: 'v1',
          kind: 'DeleteOptions',
          ...(options.preconditions ? { preconditions: options.preconditions } : {}),
          ...(options.propagationPolicy ? { propagationPolicy: options.propagationPolicy } : {}),
        }),
      });
      return true;
    } catch (error) {
      if (error instanceof KubeApiError && error.status === 404) return false;
      throw error;
    }
  }

  /**
   * Watches from `resourceVersion`, calling `onEvent` for each event, until the server ends the
   * stream (resolves) or something fails (rejects: KubeApiError; 410 Gone when the version is
   * too old). An ERROR event rejects with the Status it carries. `signal` stops the watch
   * (resolves).
   */
  async watch(
    type: ResourceType,
    namespace: string | undefined,
    options: WatchOptions,
    onEvent: (event: WatchEvent) => void,
    signal: AbortSignal,
  ): Promise<void> {
    const operation = `WATCH ${describe(type, namespace)}`;
    const request: KubeRequest = {
      method: 'GET',
      path: resourcePath(type, namespace),
      query: {
        watch: 1,
        resourceVersion: options.resourceVersion,
        labelSelector: options.labelSelector,
        timeoutSeconds: options.timeoutSeconds,
        allowWatchBookmarks: options.allowWatchBookmarks ?? true,
      },
      signal,
    };
    const combined = this.#withSignal(request);
    const aborted = (): boolean => combined.signal?.aborted === true;
    let stream: Awaited<ReturnType<KubeTransport['stream']>>;
    try {
      stream = await this.transport.stream(combined);
    } catch (error) {
      if (aborted()) return;
      throw error;
    }
    if (stream.status < 200 || stream.status >= 300) {
      throw KubeApiError.fromResponse(operation, stream.status, stream.errorBody);
    }
    try {
      for await (const line of stream.lines) {
        let event: WatchEvent;
        try {
          event = WatchEventSchema.parse(JSON.parse(line));
        } catch (error) {
          throw new KubeApiError(
            operation,
            200,
            'BadWatchEvent',
            `unreadable watch event: ${line.slice(0, 200)}`,
            {
              cause: error,
            },
          );
        }
        if (event.type === 'ERROR') {
          const status = StatusSchema.safeParse(event.object);
          const code = status.success ? (status.data.code ?? 500) : 500;
          throw KubeApiError.fromResponse(operation, code, JSON.stringify(event.object));
        }
        onEvent(event);
      }
    } catch (error) {
      if (aborted()) return;
      throw error;
    }
  }

  async #json(operation: string, request: KubeRequest): Promise<unknown> {
    let response: Awaited<ReturnType<KubeTransport['request']>>;
    try {
      response = await this.transport.request(this.#withSignal(request));
    } catch (error) {
      if (error instanceof KubeApiError) {
        throw new KubeApiError(operation, 0, error.reason, error.serverMessage, { cause: error });
      }
      throw error;
    }
    if (response.status < 200 || response.status >= 300) {
      throw KubeApiError.fromResponse(operation, response.status, response.body);
    }
    try {
      return JSON.parse(response.body);
    } catch (error) {
      throw new KubeApiError(operation, response.status, 'BadResponse', 'response is not JSON', {
        cause: error,
      });
    }
  }
}

function describe(type: ResourceType, namespace: string | undefined, name?: string): string {
  const where =
    name === undefined ? (namespace ?? '(all namespaces)') : namespace ? `${namespace}/${name}` : name;
  return `${resourceName(type)} ${where}`;
}
