/**
 * The operator's manager: shared caches (one list-watch per resource type), the three
 * controllers (cdn, node, autoscaler), and leader election around them.
 *
 * Caches and controllers live for one leadership term: built when this instance becomes the
 * leader, torn down when it stops being one, so a new term never starts from stale state.
 * Without leader election there is one term, from start() to stop().
 *
 * Controllers: cdn, node, autoscaler and streamacl (see controllers/README.md).
 */
import { API_VERSION, CDN_NAMES, NODE_NAMES } from './api/v1alpha1.js';
import {
  AutoscalerReconciler,
  type AutoscalerSettings,
  isAutoscaledEdge,
} from './controllers/autoscaler/reconciler.js';
import { CdnReconciler } from './controllers/cdn/reconciler.js';
import { NodeReconciler } from './controllers/node/reconciler.js';
import { ACCESS_KEYS_SELECTOR, LABELS, MANAGED_SELECTOR } from './controllers/shared.js';
import { AclStoreSync } from './controllers/streamacl/AclStoreSync.js';
import { StreamAclReconciler } from './controllers/streamacl/reconciler.js';
import type { KubeClient } from './kube/client.js';
import { EventRecorder } from './kube/events.js';
import {
  CDN_TYPE,
  CONFIG_MAP_TYPE,
  NODE_TYPE,
  type ResourceType,
  resourceName,
  SECRET_TYPE,
  SERVICE_TYPE,
  STATEFUL_SET_TYPE,
  STREAM_ACL_TYPE,
} from './kube/resources.js';
import type { Logger } from './logger.js';
import type { OperatorMetrics } from './metrics.js';
import { AclStores } from './redis/AclStores.js';
import { ClusterReaders } from './redis/ClusterReader.js';
import { Controller, type EventMapper, self, specChanged, toControllerOwner } from './runtime/Controller.js';
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
  autoscaler: AutoscalerSettings;
  /** How often ACL stores are checked for a reset that needs every StreamACL rewritten. */
  aclStoreCheckMs?: number | undefined;
  /** List-watch tuning (tests use short timeouts). */
  watch?: { timeoutSeconds?: number; watchdogGraceMs?: number } | undefined;
  /** Called if the manager stops on its own because of a bug (main exits; the pod restarts). */
  onFailure?: ((error: unknown) => void) | undefined;
}

/** The caches, controllers and Redis connections of one leadership term. */
export interface Term {
  caches: Record<
    'cdns' | 'nodes' | 'statefulSets' | 'services' | 'configMaps' | 'secrets' | 'streamAcls' | 'keySecrets',
    ListWatch
  >;
  controllers: Controller[];
  readers: ClusterReaders;
  aclStores: AclStores;
  aclStoreSync: AclStoreSync;
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
        term.aclStoreSync.start();
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
      await term.aclStoreSync.stop();
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
    const { logger, metrics, watchNamespace, workers } = this.#options;
    const cache = (type: ResourceType, labelSelector?: string): ListWatch =>
      new ListWatch({
        client,
        type,
        namespace: watchNamespace,
        labelSelector,
        logger,
        resyncMs: this.#options.resyncMs,
        ...(this.#options.watch?.timeoutSeconds === undefined
          ? {}
          : { watchTimeoutSeconds: this.#options.watch.timeoutSeconds }),
        ...(this.#options.watch?.watchdogGraceMs === undefined
          ? {}
          : { watchdogGraceMs: this.#options.watch.watchdogGraceMs }),
        onRestart: (reason) => metrics.watchRestarts.inc({ resource: resourceName(type), reason }),
      });
    const caches: Term['caches'] = {
      cdns: cache(CDN_TYPE),
      // Every Node: a user may create one without a CDN owner.
      nodes: cache(NODE_TYPE),
      // Only what the operator created: no need to hold every Secret of the cluster in memory.
      statefulSets: cache(STATEFUL_SET_TYPE, MANAGED_SELECTOR),
      services: cache(SERVICE_TYPE, MANAGED_SELECTOR),
      configMaps: cache(CONFIG_MAP_TYPE, MANAGED_SELECTOR),
      secrets: cache(SECRET_TYPE, MANAGED_SELECTOR),
      streamAcls: cache(STREAM_ACL_TYPE),
      // Access keys live in users' Secrets labelled for it (any name), and their changes (a key
      // rotated in its Secret re-syncs the ACLs that read it). No other Secret is cached.
      keySecrets: cache(SECRET_TYPE, ACCESS_KEYS_SELECTOR),
    };
    const readers = new ClusterReaders(logger);
    const events = new EventRecorder(client, logger, { instance: this.identity });
    const { statusRefreshMs } = this.#options;

    const cdnController = new Controller({
      name: 'cdn',
      logger,
      metrics,
      workers,
      reconciler: new CdnReconciler({
        client,
        cdns: caches.cdns,
        nodes: caches.nodes,
        services: caches.services,
        readers,
        events,
        logger: logger.child({ controller: 'cdn' }),
        statusRefreshMs,
      }),
    });
    const ownedByCdn = toControllerOwner(CDN_NAMES.kind, API_VERSION);
    cdnController.watch(caches.cdns, specChanged(self));
    cdnController.watch(caches.nodes, ownedByCdn);
    cdnController.watch(caches.services, ownedByCdn);
    cdnController.watch(caches.configMaps, ownedByCdn);
    cdnController.watch(caches.secrets, ownedByCdn);

    const nodeController = new Controller({
      name: 'node',
      logger,
      metrics,
      workers,
      reconciler: new NodeReconciler({
        client,
        nodes: caches.nodes,
        cdns: caches.cdns,
        statefulSets: caches.statefulSets,
        readers,
        events,
        logger: logger.child({ controller: 'node' }),
        statusRefreshMs,
      }),
    });
    /** A CDN (or its cluster Secret) → the Nodes that reference it. */
    const nodesOfCdn =
      (
        cdnOf: (event: Parameters<EventMapper>[0]) => string | undefined,
        filter = (_: unknown) => true,
      ): EventMapper =>
      (event) => {
        const cdn = cdnOf(event);
        const namespace = event.object.metadata.namespace ?? '';
        if (cdn === undefined) return [];
        return caches.nodes
          .list(namespace)
          .filter(
            (node) =>
              (node as { spec?: { cdnRef?: { name?: string } } }).spec?.cdnRef?.name === cdn && filter(node),
          )
          .map((node) => ({ namespace, name: node.metadata.name }));
      };
    const ownedByNode = toControllerOwner(NODE_NAMES.kind, API_VERSION);
    nodeController.watch(caches.nodes, specChanged(self));
    nodeController.watch(caches.statefulSets, ownedByNode);
    nodeController.watch(caches.services, ownedByNode);
    nodeController.watch(caches.cdns, specChanged(nodesOfCdn((event) => event.object.metadata.name)));
    nodeController.watch(
      caches.secrets,
      nodesOfCdn((event) => event.object.metadata.labels?.[LABELS.cdn]),
    );

    const autoscalerController = new Controller({
      name: 'autoscaler',
      logger,
      metrics,
      workers,
      reconciler: new AutoscalerReconciler({
        client,
        nodes: caches.nodes,
        cdns: caches.cdns,
        readers,
        events,
        logger: logger.child({ controller: 'autoscaler' }),
        metrics,
        ...this.#options.autoscaler,
      }),
    });
    autoscalerController.watch(
      caches.nodes,
      specChanged((event) => (isAutoscaledEdge(event.object) ? self(event) : [])),
    );
    autoscalerController.watch(
      caches.cdns,
      specChanged(
        nodesOfCdn(
          (event) => event.object.metadata.name,
          (node) => isAutoscaledEdge(node as never),
        ),
      ),
    );

    const aclStores = new AclStores(logger.child({ component: 'acl-stores' }));
    const streamAclReconciler = new StreamAclReconciler({
      client,
      streamAcls: caches.streamAcls,
      cdns: caches.cdns,
      secrets: caches.keySecrets,
      managedSecrets: caches.secrets,
      stores: aclStores,
      events,
      logger: logger.child({ controller: 'streamacl' }),
    });
    const streamAclController = new Controller({
      name: 'streamacl',
      logger,
      metrics,
      workers,
      reconciler: streamAclReconciler,
    });
    const aclStoreSync = new AclStoreSync({
      client,
      cdns: caches.cdns,
      streamAcls: caches.streamAcls,
      stores: aclStores,
      syncAcl: (namespace, name) => streamAclReconciler.syncAcl(namespace, name),
      intervalMs: this.#options.aclStoreCheckMs ?? 1000,
      metrics,
      logger,
    });
    type AclSpec = {
      spec?: { cdnRef?: { name?: string }; stream?: string; keys?: { secretKeyRef?: { name?: string } }[] };
    };
    const aclsWhere = (namespace: string, test: (spec: NonNullable<AclSpec['spec']>) => boolean) =>
      caches.streamAcls
        .list(namespace)
        .filter((acl) => test((acl as AclSpec).spec ?? {}))
        .map((acl) => ({ namespace, name: acl.metadata.name }));
    // A StreamACL, and every other one of its CDN guarding the same streams (one of them owns
    // the pattern: when it goes or changes, another may take over).
    streamAclController.watch(
      caches.streamAcls,
      specChanged((event) => {
        const spec = (event.object as AclSpec).spec;
        const namespace = event.object.metadata.namespace ?? '';
        return [
          ...self(event),
          ...aclsWhere(
            namespace,
            (other) => other.cdnRef?.name === spec?.cdnRef?.name && other.stream === spec?.stream,
          ),
        ];
      }),
    );
    streamAclController.watch(
      caches.cdns,
      specChanged((event) =>
        aclsWhere(
          event.object.metadata.namespace ?? '',
          (spec) => spec.cdnRef?.name === event.object.metadata.name,
        ),
      ),
    );
    streamAclController.watch(caches.keySecrets, (event) => {
      const namespace = event.object.metadata.namespace ?? '';
      const secret = event.object.metadata.name;
      const cdn = event.object.metadata.labels?.[LABELS.cdn];
      return aclsWhere(
        namespace,
        (spec) =>
          (spec.keys ?? []).some((key) => key.secretKeyRef?.name === secret) ||
          (cdn !== undefined && spec.cdnRef?.name === cdn),
      );
    });

    return {
      caches,
      controllers: [cdnController, nodeController, autoscalerController, streamAclController],
      readers,
      aclStores,
      aclStoreSync,
    };
  }
}
