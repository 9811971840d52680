/**
 * The operator's manager: the typed caches of a leadership term (one list-watch per resource
 * type), the controllers each controllers/<kind>/setup.ts builds on them (cdn, node, autoscaler,
 * streamacl with its ACL store sync), and leader election around them.
 *
 * Caches and controllers live for one leadership term: built when this instance becomes the
 * leader, torn down when it stops being one, so a new term never starts from stale state.
 * Without leader election there is one term, from start() to stop().
 */
import type { AutoscalerSettings } from './controllers/autoscaler/reconciler.js';
import { setupAutoscalerController } from './controllers/autoscaler/setup.js';
import { type Caches, createCaches } from './controllers/caches.js';
import { setupCdnController } from './controllers/cdn/setup.js';
import type { ControllerContext } from './controllers/context.js';
import { setupNodeController } from './controllers/node/setup.js';
import { setupStreamAclController } from './controllers/streamacl/setup.js';
import type { KubeClient } from './kube/client.js';
import { EventRecorder } from './kube/events.js';
import { type ResourceType, resourceName } from './kube/resources.js';
import type { Logger } from './logger.js';
import type { OperatorMetrics } from './metrics.js';
import { AclStores } from './redis/AclStores.js';
import { ClusterReaders } from './redis/ClusterReader.js';
import type { Controller } from './runtime/Controller.js';
import { LeaderElector } from './runtime/LeaderElector.js';
import { ListWatch } from './runtime/ListWatch.js';

export interface LeaderElectionSettings {
  namespace: string;
  leaseName: string;
  leaseDurationMs: number;
  renewDeadlineMs: number;
  retryPeriodMs: number;
}

export interface ManagerOptions {
  client: KubeClient;
  logger: Logger;
  metrics: OperatorMetrics;
  /** This instance (the pod name): lease holder identity and event reporting instance. */
  identity: string;
  /** Watch one namespace; all namespaces when undefined. */
  watchNamespace?: string | undefined;
  /** Undefined: no leader election (a single instance). */
  leaderElection?: LeaderElectionSettings | undefined;
  /** Workers per controller. */
  workers: number;
  /** Re-deliver every cached object this often. */
  resyncMs: number;
  /** How often CDN and Node statuses are refreshed from Redis. */
  statusRefreshMs: number;
  /** The ACL REST API's URL for CDN statuses, when one runs. */
  aclApiUrl?: string | undefined;
  autoscaler: AutoscalerSettings;
  /** How often ACL stores are checked for a reset that needs every StreamACL rewritten. */
  aclStoreCheckMs?: number | undefined;
  /** List-watch tuning (tests use short timeouts). */
  watch?: { timeoutSeconds?: number; watchdogGraceMs?: number } | undefined;
  /** Called if the manager stops on its own because of a bug (main exits; the pod restarts). */
  onFailure?: ((error: unknown) => void) | undefined;
}

/** Work of a term that is not a controller (e.g. the ACL store sync): started after the controllers. */
export interface Runnable {
  start(): void;
  stop(): Promise<void>;
}

/** The caches, controllers and Redis connections of one leadership term. */
export interface Term {
  caches: Caches;
  controllers: Controller[];
  runnables: Runnable[];
  readers: ClusterReaders;
  aclStores: AclStores;
}

export class Manager {
  readonly identity: string;
  readonly #options: ManagerOptions;
  readonly #logger: Logger;
  readonly #stop = new AbortController();
  #run: Promise<void> | undefined;
  #term: Term | undefined;
  #ready = false;
  #leader = false;
  #failed = false;

  constructor(options: ManagerOptions) {
    this.#options = options;
    this.identity = options.identity;
    this.#logger = options.logger;
  }

  /** Leading with synced caches, or following (a standby is ready too: it holds no traffic). */
  get ready(): boolean {
    return this.#run !== undefined && !this.#stop.signal.aborted && (this.#ready || !this.#leader);
  }

  get leader(): boolean {
    return this.#leader;
  }

  /** False once the manager has stopped on its own (a bug): the liveness probe restarts the pod. */
  get healthy(): boolean {
    return !this.#failed;
  }

  /** The current term (tests look at its caches and queues). */
  get term(): Term | undefined {
    return this.#term;
  }

  start(): void {
    if (this.#run) return;
    const { leaderElection } = this.#options;
    if (!leaderElection) {
      this.#run = this.#supervise(this.#lead(this.#stop.signal));
      return;
    }
    const elector = new LeaderElector({
      client: this.#options.client,
      namespace: leaderElection.namespace,
      name: leaderElection.leaseName,
      identity: this.identity,
      logger: this.#logger,
      leaseDurationMs: leaderElection.leaseDurationMs,
      renewDeadlineMs: leaderElection.renewDeadlineMs,
      retryPeriodMs: leaderElection.retryPeriodMs,
    });
    this.#run = this.#supervise(
      elector.run(this.#stop.signal, { onStartedLeading: (term) => this.#lead(term) }),
    );
  }

  /** The run must only end through stop(); anything else is a failure, reported once. */
  async #supervise(run: Promise<void>): Promise<void> {
    try {
      await run;
      if (this.#stop.signal.aborted) return;
      throw new Error('the controllers stopped without being asked to');
    } catch (error) {
      this.#failed = true;
      this.#logger.fatal({ err: error }, 'operator manager failed');
      this.#options.onFailure?.(error);
    }
  }

  /** Stops the controllers, then releases the lease (if held). */
  async stop(): Promise<void> {
    this.#stop.abort();
    await this.#run;
  }

  /** One term: runs caches and controllers until `signal` aborts. */
  async #lead(signal: AbortSignal): Promise<void> {
    this.#leader = true;
    this.#options.metrics.leader.set(1);
    // Every request of the term is aborted when it ends: nothing it started outlives it.
    const term = this.#buildTerm(this.#options.client.bound(signal));
    this.#term = term;
    // Close the queues the moment the term ends, so that reconciles whose requests are being
    // aborted know it was on purpose (and are neither logged as failures nor retried).
    signal.addEventListener('abort', () => {
      for (const controller of term.controllers) controller.queue.shutDown();
    });
    const caches = Object.values(term.caches);
    try {
      for (const cache of caches) cache.start();
      const synced = await Promise.all(caches.map((cache) => cache.waitForSync(signal)));
      if (synced.every(Boolean) && !signal.aborted) {
        for (const controller of term.controllers) controller.start();
        for (const runnable of term.runnables) runnable.start();
        this.#ready = true;
        this.#logger.info(
          { identity: this.identity, namespace: this.#options.watchNamespace ?? '(all)' },
          'controllers started',
        );
        await new Promise<void>((resolve) => {
          if (signal.aborted) resolve();
          else signal.addEventListener('abort', () => resolve(), { once: true });
        });
      }
    } finally {
      this.#ready = false;
      await Promise.all(term.runnables.map((runnable) => runnable.stop()));
      await Promise.all(term.controllers.map((controller) => controller.stop()));
      await Promise.all(caches.map((cache) => cache.stop()));
      term.readers.closeAll();
      await term.aclStores.closeAll();
      this.#term = undefined;
      this.#leader = false;
      this.#options.metrics.leader.set(0);
      this.#logger.info({ identity: this.identity }, 'controllers stopped');
    }
  }

  #buildTerm(client: KubeClient): Term {
    const { logger, metrics, watchNamespace, watch } = this.#options;
    const listWatch = (type: ResourceType, labelSelector?: string): ListWatch =>
      new ListWatch({
        client,
        type,
        namespace: watchNamespace,
        labelSelector,
        logger,
        resyncMs: this.#options.resyncMs,
        ...(watch?.timeoutSeconds === undefined ? {} : { watchTimeoutSeconds: watch.timeoutSeconds }),
        ...(watch?.watchdogGraceMs === undefined ? {} : { watchdogGraceMs: watch.watchdogGraceMs }),
        onRestart: (reason) => metrics.watchRestarts.inc({ resource: resourceName(type), reason }),
      });
    const context: ControllerContext = {
      client,
      caches: createCaches(listWatch, logger),
      readers: new ClusterReaders(logger),
      aclStores: new AclStores(logger.child({ component: 'acl-stores' })),
      events: new EventRecorder(client, logger, { instance: this.identity }),
      logger,
      metrics,
      workers: this.#options.workers,
      statusRefreshMs: this.#options.statusRefreshMs,
      aclApiUrl: this.#options.aclApiUrl,
      autoscaler: this.#options.autoscaler,
      aclStoreCheckMs: this.#options.aclStoreCheckMs ?? 1000,
    };
    const controllers = [
      setupCdnController(context),
      setupNodeController(context),
      setupAutoscalerController(context),
    ];
    const streamAcl = setupStreamAclController(context);
    return {
      caches: context.caches,
      controllers: [...controllers, streamAcl.controller],
      runnables: [streamAcl.storeSync],
      readers: context.readers,
      aclStores: context.aclStores,
    };
  }
}
