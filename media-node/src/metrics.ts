import { Counter, collectDefaultMetrics, Gauge, Registry } from 'prom-client';

/**
 * All Prometheus metrics of one media node, on a registry of its own (several nodes can live
 * in one test process without clobbering each other).
 */
export class MediaNodeMetrics {
  readonly registry = new Registry();

  readonly publishers = new Gauge({
    name: 'rtccdn_publishers',
    help: 'Live publishers (WHIP sessions with producers) on this node',
    registers: [this.registry],
  });

  readonly viewers = new Gauge({
    name: 'rtccdn_viewers',
    help: 'Active WHEP viewer sessions on this node, per stream',
    labelNames: ['stream'] as const,
    registers: [this.registry],
  });

  readonly requests = new Counter({
    name: 'rtccdn_http_requests_total',
    help: 'WHIP/WHEP requests by protocol, method and response status',
    labelNames: ['protocol', 'method', 'status'] as const,
    registers: [this.registry],
  });

  readonly workerRestarts = new Counter({
    name: 'rtccdn_worker_restarts_total',
    help: 'mediasoup workers that died and were replaced',
    registers: [this.registry],
  });

  readonly workers = new Gauge({
    name: 'rtccdn_workers',
    help: 'Running mediasoup workers',
    registers: [this.registry],
  });

  readonly bitrateIn = new Gauge({
    name: 'rtccdn_ingress_bitrate_bps',
    help: 'Media bitrate received from publishers (bit/s, sampled)',
    labelNames: ['stream'] as const,
    registers: [this.registry],
  });

  readonly bitrateOut = new Gauge({
    name: 'rtccdn_egress_bitrate_bps',
    help: 'Media bitrate sent to viewers (bit/s, sampled)',
    labelNames: ['stream'] as const,
    registers: [this.registry],
  });

  readonly sessionsClosed = new Counter({
    name: 'rtccdn_sessions_closed_total',
    help: 'Closed WHIP/WHEP sessions by protocol and reason',
    labelNames: ['protocol', 'reason'] as const,
    registers: [this.registry],
  });

  constructor() {
    // Includes nodejs_eventloop_lag_seconds and the event-loop-lag percentiles.
    collectDefaultMetrics({ register: this.registry, eventLoopMonitoringPrecision: 10 });
  }
}
