/**
 * A typed view of a {@link ListWatch}: each object is parsed with its kind's zod schema once, as
 * it enters the cache (a resync of an unchanged resourceVersion reuses the parse), so readers get
 * typed objects and never parse on their own.
 *
 * An object that does not parse (the CRD and the operator are of different versions) is kept
 * aside as an {@link InvalidObject} with its first issue: get() and list() leave it out, so that
 * to the reconcilers of other kinds it does not exist; lookup() returns it, so that the
 * reconciler of its own kind reports it, once, in the shared way (controllers/status.ts).
 *
 * Handlers registered here run after the typed entries are updated: a map function that reads
 * this cache sees the object its event is about.
 */
import type { z } from 'zod';
import { type KubeObject, keyOf, objectKey } from '../kube/objects.js';
import { type ResourceType, resourceName } from '../kube/resources.js';
import type { Logger } from '../logger.js';
import type { CacheEvent, CacheEventType, ListWatch } from './ListWatch.js';

/** What every cached object has, parsed or not: metadata with a name. */
export type CachedObject = Pick<KubeObject, 'metadata'>;

/** A parsed object: the list-watch only caches objects with a name, so the name is known. */
export type Named<T extends { metadata: object }> = T & { metadata: { name: string } };

/** An object that does not parse with its kind's schema, and the first reason why. */
export class InvalidObject {
  constructor(
    /** The object as the API server sent it. */
    readonly object: KubeObject,
    readonly issue: { readonly path: readonly PropertyKey[]; readonly message: string },
  ) {}

  get metadata(): KubeObject['metadata'] {
    return this.object.metadata;
  }

  /** Where and why, e.g. `spec.regions.0.name: must be a DNS label`. */
  get problem(): string {
    return `${this.issue.path.map(String).join('.') || '(root)'}: ${this.issue.message}`;
  }
}

export interface TypedCacheEvent<T> {
  type: CacheEventType;
  object: T | InvalidObject;
  /** The cached entry before a `modified` event. */
  previous?: T | InvalidObject | undefined;
}

export type TypedCacheHandler<T> = (event: TypedCacheEvent<T>) => void;

/** What reconcilers read from a cache: objects parsed, or the InvalidObject they are. */
export interface CacheReader<T> {
  /** The object, parsed; undefined when it is not cached or does not parse. */
  get(namespace: string | undefined, name: string): T | undefined;
  lookup(namespace: string | undefined, name: string): T | InvalidObject | undefined;
  /** The objects that parse, optionally of one namespace. */
  list(namespace?: string): T[];
  /** Every cached object, parsed or invalid (for what only needs metadata, or must not skip any). */
  listAll(namespace?: string): (T | InvalidObject)[];
}

interface Entry<T> {
  /** The resourceVersion that was parsed. */
  version: string | undefined;
  value: T | InvalidObject;
}

export class TypedCache<T extends CachedObject> implements CacheReader<T> {
  readonly source: ListWatch;
  readonly #parse: (object: KubeObject) => T | InvalidObject;
  readonly #logger: Logger;
  readonly #entries = new Map<string, Entry<T>>();
  readonly #handlers: TypedCacheHandler<T>[] = [];

  /** Use {@link typedCache}, which types the objects from the schema. */
  constructor(source: ListWatch, parse: (object: KubeObject) => T | InvalidObject, logger: Logger) {
    this.source = source;
    this.#parse = parse;
    this.#logger = logger;
    source.addHandler((event) => this.#update(event));
  }

  get type(): ResourceType {
    return this.source.type;
  }

  get synced(): boolean {
    return this.source.synced;
  }

  get(namespace: string | undefined, name: string): T | undefined {
    const value = this.lookup(namespace, name);
    return value instanceof InvalidObject ? undefined : value;
  }

  lookup(namespace: string | undefined, name: string): T | InvalidObject | undefined {
    return this.#entries.get(objectKey(namespace, name))?.value;
  }

  list(namespace?: string): T[] {
    return this.listAll(namespace).filter((value): value is T => !(value instanceof InvalidObject));
  }

  listAll(namespace?: string): (T | InvalidObject)[] {
    const all = [...this.#entries.values()].map((entry) => entry.value);
    return namespace === undefined ? all : all.filter((value) => value.metadata.namespace === namespace);
  }

  /** Registers a handler; objects already cached are delivered to it as `added`. */
  addHandler(handler: TypedCacheHandler<T>): void {
    this.#handlers.push(handler);
    for (const { value } of this.#entries.values()) this.#deliver(handler, { type: 'added', object: value });
  }

  start(): void {
    this.source.start();
  }

  waitForSync(signal?: AbortSignal): Promise<boolean> {
    return this.source.waitForSync(signal);
  }

  stop(): Promise<void> {
    return this.source.stop();
  }

  #update(event: CacheEvent): void {
    const key = keyOf(event.object);
    const previous = this.#entries.get(key);
    const version = event.object.metadata.resourceVersion;
    const value =
      previous && version !== undefined && previous.version === version
        ? previous.value
        : this.#parse(event.object);
    if (event.type === 'deleted') this.#entries.delete(key);
    else this.#entries.set(key, { version, value });
    const typed: TypedCacheEvent<T> =
      event.type === 'modified'
        ? { type: event.type, object: value, previous: previous?.value }
        : { type: event.type, object: value };
    for (const handler of this.#handlers) this.#deliver(handler, typed);
  }

  #deliver(handler: TypedCacheHandler<T>, event: TypedCacheEvent<T>): void {
    try {
      handler(event);
    } catch (error) {
      this.#logger.error(
        { err: error, object: objectKey(event.object.metadata.namespace, event.object.metadata.name) },
        'cache event handler failed',
      );
    }
  }
}

/**
 * A TypedCache of `source` whose objects are parsed with `schema`. The cast to Named is safe:
 * the list-watch skips objects without metadata.name before they get here.
 */
export function typedCache<S extends z.ZodType<{ metadata: object }>>(
  source: ListWatch,
  schema: S,
  logger: Logger,
): TypedCache<Named<z.output<S>>> {
  return new TypedCache(
    source,
    (object) => {
      const parsed = schema.safeParse(object);
      if (parsed.success) return parsed.data as Named<z.output<S>>;
      const issue = parsed.error.issues[0] ?? { path: [], message: 'invalid' };
      return new InvalidObject(object, issue);
    },
    logger.child({ resource: resourceName(source.type) }),
  );
}
