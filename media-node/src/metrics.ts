import { Counter, collectDefaultMetrics, Gauge, Histogram, Registry } from 'prom-client';

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

  readonly layerSwitches = new Counter({
    name: 'rtccdn_viewer_layer_switches_total',
    help: "Simulcast layer changes of viewers' video (mediasoup's choice from each viewer's bandwidth estimate), by direction",
    labelNames: ['direction'] as const,
    registers: [this.registry],
  });

  readonly relaysOut = new Gauge({
    name: 'rtccdn_relays_out',
    help: 'Relays this node sends to other nodes (one per downstream node and stream)',
    registers: [this.registry],
  });

  readonly relaysIn = new Gauge({
    name: 'rtccdn_relays_in',
    help: 'Streams this node relays from another node',
    registers: [this.registry],
  });

  readonly relaySetupSeconds = new Histogram({
    name: 'rtccdn_relay_setup_seconds',
    help: 'Time to pull a stream from another node (lookup, pipe, producers), by source kind',
    labelNames: ['source', 'result'] as const,
    buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5],
    registers: [this.registry],
  });

  readonly upstreamSwitches = new Counter({
    name: 'rtccdn_upstream_switches_total',
    help: 'Relayed streams moved to a new upstream without closing their viewers, by reason',
    labelNames: ['reason'] as const,
    registers: [this.registry],
  });

  readonly relayedStreamsClosed = new Counter({
    name: 'rtccdn_relayed_streams_closed_total',
    help: 'Relayed streams closed on this node, by reason',
    labelNames: ['reason'] as const,
    registers: [this.registry],
  });

  readonly admissions = new Counter({
    name: 'rtccdn_admissions_total',
    help: 'Viewer admission decisions by result (ok, 401, 403, 429, 503)',
    labelNames: ['result'] as const,
    registers: [this.registry],
  });

  readonly revocations = new Counter({
    name: 'rtccdn_revocations_total',
    help: 'Viewer sessions closed by access control, by reason',
    labelNames: ['reason'] as const,
    registers: [this.registry],
  });

  readonly revocationSeconds = new Histogram({
    name: 'rtccdn_revocation_cutoff_seconds',
    help: 'From an ACL change (or key expiry) to the viewer session being closed on this node',
    buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5],
    registers: [this.registry],
  });

  /** Sessions being set up node-wide and joins waiting for a slot (set by ClientQuotas). */
  admissionSampler: () => { pending: number; waiting: number } = () => ({ pending: 0, waiting: 0 });

  readonly admission: Gauge<'state'> = new Gauge({
    name: 'rtccdn_admission_sessions',
    help: 'WHEP sessions being set up (state="pending", bounded by MAX_PENDING_SESSIONS) and joins waiting in line for a slot (state="waiting")',
    labelNames: ['state'] as const,
    registers: [this.registry],
    collect: (): void => {
      const { pending, waiting } = this.admissionSampler();
      this.admission.set({ state: 'pending' }, pending);
      this.admission.set({ state: 'waiting' }, waiting);
    },
  });

  /** Seconds since the ACL cache was confirmed current, -1 before the first load (set by StreamAccess). */
  aclCacheAge: () => number = () => -1;

  readonly aclCacheAgeSeconds: Gauge = new Gauge({
    name: 'rtccdn_acl_cache_age_seconds',
    help: 'Time since the ACL cache was last known to match the store (grows while Redis is down); -1 before the first load',
    registers: [this.registry],
    collect: (): void => this.aclCacheAgeSeconds.set(this.aclCacheAge()),
  });

  readonly transcodeJobs = new Gauge({
    name: 'rtccdn_transcode_jobs',
    help: 'Renditions being made on this node',
    registers: [this.registry],
  });

  readonly transcodeJobStarts = new Counter({
    name: 'rtccdn_transcode_job_starts_total',
    help: 'Renditions started, by profile',
    labelNames: ['profile'] as const,
    registers: [this.registry],
  });

  readonly transcodeJobFailures = new Counter({
    name: 'rtccdn_transcode_job_failures_total',
    help: 'Renditions that failed to start or ended because FFmpeg kept failing, by profile',
    labelNames: ['profile'] as const,
    registers: [this.registry],
  });

  readonly transcodeFirstFrameSeconds = new Histogram({
    name: 'rtccdn_transcode_first_frame_seconds',
    help: 'From starting a rendition to its first transcoded frame, by profile',
    labelNames: ['profile'] as const,
    buckets: [0.1, 0.25, 0.5, 0.75, 1, 1.5, 2, 3, 5, 10],
    registers: [this.registry],
  });

  /** FFmpeg CPU in cores since the last scrape (set by the Transcoder). */
  readonly hlsJobs = new Gauge({
    name: 'rtccdn_hls_jobs',
    help: 'HLS packagers (FFmpeg) running on this node',
    registers: [this.registry],
  });

  readonly hlsJobStarts = new Counter({
    name: 'rtccdn_hls_job_starts_total',
    help: 'HLS packagers started on this node',
    registers: [this.registry],
  });

  readonly hlsJobEnds = new Counter({
    name: 'rtccdn_hls_job_ends_total',
    help: 'HLS packagers stopped, by reason (unwatched, source-ended, ffmpeg-failed, node-draining, node-shutdown)',
    labelNames: ['reason'] as const,
    registers: [this.registry],
  });

  readonly hlsFirstSegmentSeconds = new Histogram({
    name: 'rtccdn_hls_first_segment_seconds',
    help: 'From starting an HLS packager to its first media segment',
    buckets: [0.5, 1, 1.5, 2, 3, 4, 6, 10],
    registers: [this.registry],
  });

  readonly hlsFirstPartSeconds = new Histogram({
    name: 'rtccdn_hls_first_part_seconds',
    help: 'From starting an HLS packager to its first LL-HLS part',
    buckets: [0.25, 0.5, 1, 1.5, 2, 3, 4, 6, 10],
    registers: [this.registry],
  });

  readonly hlsBlockedRequests = new Counter({
    name: 'rtccdn_hls_blocked_requests_total',
    help: 'LL-HLS requests held for a part to come (blocking playlist reloads, preload-hinted parts)',
    registers: [this.registry],
  });

  readonly hlsBlockedSeconds = new Histogram({
    name: 'rtccdn_hls_blocked_seconds',
    help: 'How long LL-HLS requests were held for their part (answered, timed out or refused)',
    buckets: [0.05, 0.1, 0.2, 0.3, 0.5, 1, 2, 3],
    registers: [this.registry],
  });

  readonly hlsRequests = new Counter({
    name: 'rtccdn_hls_requests_total',
    help: 'HLS requests by kind (multivariant, media, init, part, segment) and response status',
    labelNames: ['kind', 'status'] as const,
    registers: [this.registry],
  });

  readonly hlsRefusals = new Counter({
    name: 'rtccdn_hls_refusals_total',
    help: 'HLS requests refused, by error code (HLS_URL_INVALID, HLS_URL_EXPIRED, ACCESS_DENIED, …)',
    labelNames: ['code'] as const,
    registers: [this.registry],
  });

  readonly hlsForwardedRequests = new Counter({
    name: 'rtccdn_hls_forwarded_requests_total',
    help: 'HLS requests passed on to the edge that packages the player’s stream, by outcome (answered, refused: the holder’s 4xx, failed: its 5xx, node-gone, registry-unavailable, bad-answer)',
    labelNames: ['outcome'] as const,
    registers: [this.registry],
  });

  transcodeCpuSampler: () => number = () => 0;

  readonly transcodeCpu: Gauge = new Gauge({
    name: 'rtccdn_transcode_ffmpeg_cpu_cores',
    help: 'CPU used by FFmpeg processes since the previous scrape, in cores',
    registers: [this.registry],
    collect: (): void => this.transcodeCpu.set(this.transcodeCpuSampler()),
  });

  readonly limitRefusals = new Counter({
    name: 'rtccdn_limit_refusals_total',
    help: 'Requests refused by a per-client quota or a node limit, by limit',
    labelNames: ['limit'] as const,
    registers: [this.registry],
  });

  /** 1 when admission can decide (set by StreamAccess). */
  aclStoreSyncedSampler: () => number = () => 0;

  readonly aclStoreSynced: Gauge = new Gauge({
    name: 'rtccdn_acl_store_synced',
    help: '1 when ACL admission can decide: the ACLs are loaded (and, under the operator, fully written for the store epoch); 0 while viewers are refused with 503',
    registers: [this.registry],
    collect: (): void => this.aclStoreSynced.set(this.aclStoreSyncedSampler()),
  });

  readonly registryUp = new Gauge({
    name: 'rtccdn_registry_up',
    help: '1 while the node is registered in Redis and heartbeating, else 0',
    registers: [this.registry],
  });

  constructor() {
    // Includes nodejs_eventloop_lag_seconds and the event-loop-lag percentiles.
    collectDefaultMetrics({ register: this.registry, eventLoopMonitoringPrecision: 10 });
  }
}
