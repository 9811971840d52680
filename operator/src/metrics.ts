import { Counter, collectDefaultMetrics, Gauge, Histogram, Registry } from 'prom-client';

/**
 * The operator's Prometheus metrics, on GET /metrics of the health port. One registry per
 * operator instance (tests run several in one process).
 *
 * The autoscaler's signal is exported too (`rtccdn_operator_edges_desired`,
 * `rtccdn_operator_region_viewers`), so that an HPA or KEDA can drive the Node scale
 * subresource from it instead of the built-in autoscaler.
 */
export class OperatorMetrics {
  readonly registry = new Registry();
  readonly reconciles: Counter<'controller' | 'result'>;
  readonly reconcileDuration: Histogram<'controller'>;
  readonly queueDepth: Gauge<'controller'>;
  readonly leader: Gauge;
  readonly watchRestarts: Counter<'resource' | 'reason'>;
  readonly edgesDesired: Gauge<'namespace' | 'cdn' | 'region'>;
  readonly regionViewers: Gauge<'namespace' | 'cdn' | 'region'>;
  readonly drainRequests: Counter<'result'>;
  readonly aclStoreSyncs: Counter;

  constructor(options: { collectDefaults?: boolean } = {}) {
    const registers = [this.registry];
    if (options.collectDefaults ?? true) collectDefaultMetrics({ register: this.registry });
    this.reconciles = new Counter({
      name: 'rtccdn_operator_reconcile_total',
      help: 'Reconciles by controller and result (success, requeue, error).',
      labelNames: ['controller', 'result'],
      registers,
    });
    this.reconcileDuration = new Histogram({
      name: 'rtccdn_operator_reconcile_duration_seconds',
      help: 'Time one reconcile takes, by controller.',
      labelNames: ['controller'],
      buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30],
      registers,
    });
    this.queueDepth = new Gauge({
      name: 'rtccdn_operator_workqueue_depth',
      help: 'Keys waiting in the work queue, by controller.',
      labelNames: ['controller'],
      registers,
    });
    this.leader = new Gauge({
      name: 'rtccdn_operator_leader',
      help: '1 while this instance holds the leader lease (and runs the controllers), else 0.',
      registers,
    });
    this.watchRestarts = new Counter({
      name: 'rtccdn_operator_watch_restarts_total',
      help: 'List-watch restarts by resource and reason (gone, stalled, error, closed, relist).',
      labelNames: ['resource', 'reason'],
      registers,
    });
    this.edgesDesired = new Gauge({
      name: 'rtccdn_operator_edges_desired',
      help: 'Edge nodes the autoscaler wants per region: clamp(ceil(viewers / targetViewersPerEdge), min, max).',
      labelNames: ['namespace', 'cdn', 'region'],
      registers,
    });
    this.regionViewers = new Gauge({
      name: 'rtccdn_operator_region_viewers',
      help: 'Viewers on the edge nodes of a region, as reported in Redis.',
      labelNames: ['namespace', 'cdn', 'region'],
      registers,
    });
    this.aclStoreSyncs = new Counter({
      name: 'rtccdn_operator_acl_store_syncs_total',
      help: 'Full rewrites of an ACL store (a new or reset Redis) completed and marked synced.',
      registers,
    });
    this.drainRequests = new Counter({
      name: 'rtccdn_operator_drain_requests_total',
      help: 'Drain (and undrain) calls to edge nodes, by result (ok, error).',
      labelNames: ['result'],
      registers,
    });
  }
}
