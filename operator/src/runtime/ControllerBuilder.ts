/**
 * Builds the Controller of one kind, as controller-runtime's builder does:
 *
 *   new ControllerBuilder('node', context)
 *     .for(caches.nodes, { predicate: specChanged })     // the primary kind: events enqueue the object
 *     .owns(caches.statefulSets)                          // objects it controls: enqueue their owner
 *     .watches(caches.cdns, (event) => nodesOf(event.object), { predicate: specChanged })
 *     .complete(new NodeReconciler(...));
 *
 * Map functions and predicates are typed by the cache they watch. The reconciler receives the
 * primary object parsed (an {@link ObjectReconciler}): the builder looks it up in the primary
 * cache, so no reconciler parses or looks up its own object, and an object that does not parse
 * goes to `reconcileInvalid`.
 */
import { apiVersionOf } from '../kube/resources.js';
import type { Logger } from '../logger.js';
import type { OperatorMetrics } from '../metrics.js';
import { Controller, type ReconcileRequest, type ReconcileResult, type Reconciler } from './Controller.js';
import { type CachedObject, InvalidObject, type TypedCache, type TypedCacheEvent } from './TypedCache.js';

/** Reconciles objects of one kind, handed over parsed. */
export interface ObjectReconciler<T> {
  /**
   * Makes the world match `object` (as cached; it may be being deleted). Throws to be retried
   * with backoff; the error must say what failed (the controller logs it).
   */
  reconcile(object: T): Promise<ReconcileResult | undefined>;
  /**
   * `object` does not parse with its kind's schema: report it (controllers/status.ts:
   * reportInvalidSpec). Absent: nothing is done (another controller of the kind reports it).
   */
  reconcileInvalid?(object: InvalidObject): Promise<ReconcileResult | undefined>;
  /** The object is gone from the cache (deleted): forget what was kept about it. */
  forget?(request: ReconcileRequest): void;
}

/** Turns an event of a cache of T into the requests it concerns (none, one or several). */
export type MapFunction<T> = (event: TypedCacheEvent<T>) => ReconcileRequest[];
/** Whether an event of a cache of T is worth mapping at all. */
export type Predicate<T> = (event: TypedCacheEvent<T>) => boolean;

export interface ControllerDependencies {
  logger: Logger;
  metrics?: OperatorMetrics | undefined;
  /** Concurrent reconciles (of different objects). */
  workers?: number;
}

/** The request for an object itself. */
export const requestFor = (object: CachedObject): ReconcileRequest => ({
  namespace: object.metadata.namespace ?? '',
  name: object.metadata.name,
});

/**
 * Skips updates that changed only the status (the operator's own status writes would otherwise
 * trigger a reconcile each). Spec changes bump metadata.generation; labels, annotations and
 * deletion are checked explicitly.
 */
export const specChanged: Predicate<CachedObject> = (event) => {
  if (event.type !== 'modified' || !event.previous) return true;
  const before = event.previous.metadata;
  const after = event.object.metadata;
  return (
    before.generation !== after.generation ||
    before.deletionTimestamp !== after.deletionTimestamp ||
    JSON.stringify(before.labels ?? {}) !== JSON.stringify(after.labels ?? {}) ||
    JSON.stringify(before.annotations ?? {}) !== JSON.stringify(after.annotations ?? {})
  );
};

export class ControllerBuilder {
  readonly #name: string;
  readonly #dependencies: ControllerDependencies;

  constructor(name: string, dependencies: ControllerDependencies) {
    this.#name = name;
    this.#dependencies = dependencies;
  }

  /** The kind this controller reconciles: each of its events enqueues the object itself. */
  for<T extends CachedObject>(
    primary: TypedCache<T>,
    options: { predicate?: Predicate<T> } = {},
  ): ControllerBuilderFor<T> {
    return new ControllerBuilderFor(this.#name, this.#dependencies, primary, options.predicate);
  }
}

interface Watch {
  register(controller: Controller): void;
}

export class ControllerBuilderFor<T extends CachedObject> {
  readonly #name: string;
  readonly #dependencies: ControllerDependencies;
  readonly #primary: TypedCache<T>;
  readonly #watches: Watch[] = [];

  constructor(
    name: string,
    dependencies: ControllerDependencies,
    primary: TypedCache<T>,
    predicate: Predicate<T> | undefined,
  ) {
    this.#name = name;
    this.#dependencies = dependencies;
    this.#primary = primary;
    this.watches(primary, (event) => [requestFor(event.object)], predicate ? { predicate } : {});
  }

  /**
   * Objects this kind controls (their controller ownerReference names an object of the primary
   * kind): each of their events enqueues that owner.
   */
  owns<U extends CachedObject>(owned: TypedCache<U>): this {
    const { kind } = this.#primary.type;
    const apiVersion = apiVersionOf(this.#primary.type);
    return this.watches(owned, (event) => {
      const owner = event.object.metadata.ownerReferences?.find(
        (reference) =>
          reference.controller === true && reference.kind === kind && reference.apiVersion === apiVersion,
      );
      return owner ? [{ namespace: event.object.metadata.namespace ?? '', name: owner.name }] : [];
    });
  }

  /** Any other cache: `map` says which objects of the primary kind an event concerns. */
  watches<U extends CachedObject>(
    cache: TypedCache<U>,
    map: MapFunction<U>,
    options: { predicate?: Predicate<U> } = {},
  ): this {
    const { predicate } = options;
    this.#watches.push({
      register: (controller) =>
        controller.watch(cache, (event: TypedCacheEvent<U>) =>
          predicate && !predicate(event) ? [] : map(event),
        ),
    });
    return this;
  }

  /** The controller, its watches registered; the caches are started by whoever owns them. */
  complete(reconciler: ObjectReconciler<T>): Controller {
    const primary = this.#primary;
    const adapter: Reconciler = {
      async reconcile(request) {
        const cached = primary.lookup(request.namespace, request.name);
        if (cached === undefined) {
          reconciler.forget?.(request);
          return undefined;
        }
        if (cached instanceof InvalidObject) return reconciler.reconcileInvalid?.(cached);
        return reconciler.reconcile(cached);
      },
    };
    const { logger, metrics, workers } = this.#dependencies;
    const controller = new Controller({
      name: this.#name,
      reconciler: adapter,
      logger,
      metrics,
      ...(workers === undefined ? {} : { workers }),
    });
    for (const watch of this.#watches) watch.register(controller);
    return controller;
  }
}
