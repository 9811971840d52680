import { isIP } from 'node:net';
import os from 'node:os';
import { z } from 'zod';
import { dnsLabel } from '../contract/names.js';
import { parseRedisUrl } from '../contract/redis.js';
import {
  booleanFlag,
  ConfigError,
  LOG_LEVELS,
  milliseconds,
  optionalNonEmpty,
  parseEnvironment,
} from '../contract/runtime.js';

export { ConfigError };

import type { AccessConfig } from './acl/StreamAccess.js';
import { type Profile, parseProfiles } from './transcode/profiles.js';

/**
 * The media node's container contract: every setting comes from the environment and is
 * validated here, once, at start. A bad value is reported naming the variable.
 */

const port = z.coerce
  .number({ error: 'must be a number' })
  .int('must be an integer')
  .min(1, 'must be between 1 and 65535')
  .max(65535, 'must be between 1 and 65535');

export { LOG_LEVELS };

/** origin: WHIP ingest; edge: WHEP playback; transcoder: renditions; all: standalone (both). */
export const ROLES = ['origin', 'edge', 'transcoder', 'all'] as const;
export type Role = (typeof ROLES)[number];

/** "min-max" UDP port range. */
const portRange = z
  .string()
  .regex(/^\d{1,5}-\d{1,5}$/, 'must look like 41000-41999')
  .transform((value) => value.split('-').map(Number) as [number, number])
  .refine(
    ([min, max]) => min >= 1 && max <= 65535 && min <= max,
    'must be min-max within 1-65535, min <= max',
  );

export const EnvSchema = z
  .object({
    ROLE: z.enum(ROLES, { error: `must be one of ${ROLES.join(', ')}` }).default('all'),
    /** Region this node serves; edges prefer relays and transcoders of their own region. */
    REGION: dnsLabel('must be a DNS label (lowercase letters, digits, -)').default('default'),
    NODE_ID: z
      .string()
      .regex(/^[A-Za-z0-9._-]{1,128}$/, 'must be 1-128 characters of [A-Za-z0-9._-]')
      .optional(),
    REDIS_URL: optionalNonEmpty.pipe(
      z
        .string()
        .superRefine((url, context) => {
          try {
            parseRedisUrl(url);
          } catch (error) {
            context.addIssue({ code: 'custom', message: (error as Error).message });
          }
        })
        .optional(),
    ),
    REDIS_PREFIX: z
      .string()
      .regex(/^[A-Za-z0-9:._-]{0,64}$/, 'must be up to 64 of [A-Za-z0-9:._-]')
      .default('rtccdn:'),
    /** Node-to-node API (relays); authenticated with CLUSTER_SECRET. */
    INTERNAL_PORT: port.default(8081),
    /** Address other nodes use to reach this one (internal API and media pipes). */
    INTERNAL_ADDRESS: optionalNonEmpty,
    CLUSTER_SECRET: optionalNonEmpty.pipe(z.string().min(16, 'must be at least 16 characters').optional()),
    /** UDP ports for PipeTransports between nodes (one port per relay). */
    PIPE_PORT_RANGE: portRange.default([41000, 41999]),
    /** How long an edge keeps an idle relay (no viewers) before tearing it down on both sides. */
    RELAY_LINGER_MS: milliseconds(10_000),
    /** Edges pull a stream from an edge of their region that already has it, not the origin. */
    REGIONAL_RELAY: booleanFlag('true'),
    /**
     * How long an edge keeps viewers of a stream whose origin vanished, waiting for the
     * publisher to come back (anywhere) so they resume without renegotiation. 0 closes at once.
     */
    SOURCE_LOSS_GRACE_MS: milliseconds(0),
    HOST: z.string().min(1).default('0.0.0.0'),
    /**
     * Listen address of the internal port (metrics, stream list, node-to-node API). Default: HOST
     * in a CDN (other nodes call it), loopback on a standalone node.
     */
    INTERNAL_HOST: optionalNonEmpty,
    /**
     * Proxies (IP addresses or CIDRs, comma-separated) whose X-Forwarded-For is believed for the
     * client address; from anyone else the header is ignored.
     */
    TRUSTED_PROXIES: z
      .string()
      .optional()
      .transform((value, context) => {
        const entries = (value ?? '')
          .split(',')
          .map((entry) => entry.trim())
          .filter(Boolean);
        for (const entry of entries) {
          if (!isAddressOrCidr(entry)) {
            context.addIssue({
              code: 'custom',
              message: `must list IP addresses or CIDRs (bad entry "${entry}")`,
            });
            return z.NEVER;
          }
        }
        return entries;
      }),
    PORT: port.default(8080),
    /**
     * PEM certificate (chain) and private key files: with both, the public port (PORT) serves
     * HTTPS, and HTTP/2 to clients that offer it; the files are reloaded when they change.
     */
    TLS_CERT_FILE: optionalNonEmpty,
    TLS_KEY_FILE: optionalNonEmpty,
    RTC_PORT: port.default(40000),
    /**
     * The pod's ordinal in its StatefulSet (Kubernetes; downward API): offsets the WebRTC ports by
     * POD_INDEX × WORKERS, so that every pod of a group has ports of its own (per-pod NodePorts).
     */
    POD_INDEX: z.coerce
      .number({ error: 'must be a number' })
      .int('must be an integer')
      .min(0)
      .max(10_000)
      .default(0),
    RTC_LISTEN_IP: z.ipv4({ error: 'must be an IPv4 address' }).or(z.ipv6()).default('0.0.0.0'),
    ANNOUNCED_IP: optionalNonEmpty,
    WORKERS: z.coerce
      .number({ error: 'must be a number' })
      .int('must be an integer')
      .min(1, 'must be at least 1')
      .max(64, 'must be at most 64')
      .optional(),
    PUBLISH_TOKEN: optionalNonEmpty,
    LOG_LEVEL: z.enum(LOG_LEVELS, { error: `must be one of ${LOG_LEVELS.join(', ')}` }).default('info'),
    /**
     * How long a WHIP/WHEP session may take to complete ICE+DTLS before it is reclaimed. Real
     * clients connect within a second or two; what never connects only holds ports and routers.
     */
    CONNECT_TIMEOUT_MS: z.coerce.number().int().min(1000).max(600_000).default(10_000),
    /**
     * Sessions not yet connected the node holds at once, from all clients together: joins it is
     * still setting up (offer → answer → ICE + DTLS). Past it, a flash crowd gets 503 +
     * Retry-After instead of queueing behind itself until everyone times out. Default: 64 per
     * worker (bench/flashcrowd.ts, docs/capacity.md).
     */
    MAX_PENDING_SESSIONS: z.coerce.number().int().min(1).max(100_000).optional(),
    /**
     * How long a join past MAX_PENDING_SESSIONS waits in line for a slot before 503 (at most
     * 4 × MAX_PENDING_SESSIONS wait). 0: refuse at once.
     */
    ADMISSION_QUEUE_MS: z.coerce.number().int().min(0).max(60_000).default(2000),
    /** Sessions not yet connected one client (IPv4 address or IPv6 /64) may hold at once. */
    MAX_PENDING_SESSIONS_PER_CLIENT: z.coerce.number().int().min(1).max(100_000).default(32),
    /** Renditions one client may cause to start per minute (each is an FFmpeg process). */
    RENDITION_STARTS_PER_CLIENT: z.coerce.number().int().min(1).max(100_000).default(4),
    /**
     * Distinct payload-type numberings served per stream per node (each needs routers and pipes
     * of its own); browsers and libwebrtc share one.
     */
    MAX_NUMBERINGS_PER_STREAM: z.coerce.number().int().min(1).max(64).default(4),
    /** Live streams a node holds at most (published here); more get 503. */
    MAX_STREAMS: z.coerce.number().int().min(1).max(100_000).default(1000),
    /** Streams one client may publish at once when PUBLISH_TOKEN is unset (open ingest). */
    MAX_PUBLISHES_PER_CLIENT: z.coerce.number().int().min(1).max(100_000).default(4),
    /** How long a per-worker fan-out pipe outlives its last viewer (viewers churn). */
    FANOUT_LINGER_MS: z.coerce.number().int().min(0).max(600_000).default(10_000),
    /** How long SIGTERM waits for sessions to close before exiting anyway. */
    SHUTDOWN_TIMEOUT_MS: z.coerce.number().int().min(0).max(600_000).default(10_000),
    /**
     * How long a draining edge keeps serving its viewers (drain API, or SIGTERM in a CDN) before
     * it ends their sessions (reason `node-draining`) so their players re-join elsewhere.
     */
    DRAIN_DEADLINE_MS: z.coerce.number().int().min(0).max(86_400_000).default(60_000),
    /** Serve the demo page at `/`. */
    DEMO_PAGE: booleanFlag('true'),
    /**
     * Where ACLs are changed: `local` (this node's ACL REST API writes Redis) or `kubernetes`
     * (StreamACL resources are the truth: the operator serves the ACL API; this node's answers 421).
     */
    ACL_API: z.enum(['local', 'kubernetes'], { error: 'must be local or kubernetes' }).default('local'),
    /** Bearer token of the ACL REST API (origins, standalone). */
    ADMIN_TOKEN: optionalNonEmpty.pipe(z.string().min(16, 'must be at least 16 characters').optional()),
    /** Streams without an ACL: allow (public, freemium) or deny (private). */
    ACL_DEFAULT_POLICY: z.enum(['allow', 'deny'], { error: 'must be allow or deny' }).default('allow'),
    /** Protected streams admit new viewers only from an ACL cache confirmed this recently. */
    ACL_MAX_STALENESS_MS: milliseconds(30_000, 1000),
    ACL_FAILURES_PER_CLIENT: z.coerce.number().int().min(1).max(1_000_000).default(10),
    ACL_FAILURES_PER_STREAM: z.coerce.number().int().min(1).max(1_000_000).default(100),
    ACL_FAILURE_WINDOW_MS: milliseconds(60_000, 1000),
    /** Accept `?key=` on WHEP for players that cannot set headers (keys end up in access logs). */
    ACL_QUERY_KEY: booleanFlag('true'),
    /** Rendition ladder (JSON array of {name, width, height, fps, codec, bitrate}). */
    PROFILES: z
      .string()
      .optional()
      .transform((value, context) => {
        try {
          return parseProfiles(value);
        } catch (error) {
          context.addIssue({ code: 'custom', message: (error as Error).message });
          return z.NEVER;
        }
      }),
    FFMPEG_PATH: z.string().min(1).default('ffmpeg'),
    /** Renditions one transcoder runs at most (FFmpeg is CPU-bound). */
    TRANSCODER_MAX_JOBS: z.coerce.number().int().min(1).max(1000).default(4),
    /** An unwatched rendition is stopped after this long. */
    TRANSCODE_LINGER_MS: milliseconds(10_000),
    /** Edges ask transcoders of other regions when none of theirs can take the job. */
    TRANSCODE_OTHER_REGIONS: booleanFlag('false'),
    /**
     * Viewers without `?profile` get the rendition ladder (every profile started on demand, plus
     * the source) and move along it with their link. Off: they get the source as published.
     */
    ADAPTIVE_LADDER: booleanFlag('false'),
    /** Serve live streams as HLS at /hls/{stream}/index.m3u8 (edges and standalone nodes). */
    HLS: booleanFlag('true'),
    /** HLS packagers (one FFmpeg each, encoding H.264) one node runs at most. */
    HLS_MAX_JOBS: z.coerce.number().int().min(1).max(1000).default(4),
    /** An HLS packager nobody requested a playlist or segment of for this long is stopped. */
    HLS_LINGER_MS: milliseconds(15_000, 1000),
    /** Lifetime of the signed segment URLs a media playlist hands out. */
    HLS_SEGMENT_URL_TTL_MS: milliseconds(60_000, 5000),
    /**
     * Lifetime of the signed media-playlist URL the multivariant playlist hands out: after it the
     * player must load the multivariant playlist again with its key. Revocation does not wait for
     * it: every request re-checks the key against the ACL.
     */
    HLS_PLAYLIST_URL_TTL_MS: milliseconds(6 * 3_600_000, 10_000, 86_400_000),
  })
  .refine((env) => env.TLS_CERT_FILE !== undefined || env.TLS_KEY_FILE === undefined, {
    message: 'is required with TLS_KEY_FILE (HTTPS needs both the certificate and its key)',
    path: ['TLS_CERT_FILE'],
  })
  .refine((env) => env.TLS_KEY_FILE !== undefined || env.TLS_CERT_FILE === undefined, {
    message: 'is required with TLS_CERT_FILE (HTTPS needs both the certificate and its key)',
    path: ['TLS_KEY_FILE'],
  })
  .refine((env) => env.RTC_PORT + (env.WORKERS ?? 1) - 1 <= 65535, {
    message: 'RTC_PORT + WORKERS - 1 must not exceed 65535',
    path: ['RTC_PORT'],
  })
  .refine((env) => env.ROLE === 'all' || env.REDIS_URL !== undefined, {
    message: 'is required for ROLE origin, edge and transcoder (nodes find each other through Redis)',
    path: ['REDIS_URL'],
  })
  .refine((env) => env.REDIS_URL === undefined || env.CLUSTER_SECRET !== undefined, {
    message: 'is required with REDIS_URL (it authenticates the node-to-node API)',
    path: ['CLUSTER_SECRET'],
  })
  .refine(
    (env) =>
      env.ROLE !== 'all' ||
      env.REDIS_URL === undefined ||
      env.ACL_API === 'kubernetes' ||
      env.ADMIN_TOKEN !== undefined,
    {
      // Otherwise anyone who reaches the port could rewrite the ACLs of the whole CDN.
      message: 'is required for ROLE=all with REDIS_URL (the ACL API writes the shared Redis)',
      path: ['ADMIN_TOKEN'],
    },
  )
  .refine((env) => env.INTERNAL_ADDRESS === undefined || isIP(env.INTERNAL_ADDRESS) !== 0, {
    message: 'must be an IP address (other nodes accept only http://IP:port internal URLs)',
    path: ['INTERNAL_ADDRESS'],
  })
  .refine(
    (env) =>
      env.INTERNAL_HOST === undefined || isIP(env.INTERNAL_HOST) !== 0 || env.INTERNAL_HOST === 'localhost',
    {
      message: 'must be an IP address to listen on',
      path: ['INTERNAL_HOST'],
    },
  );

function isAddressOrCidr(entry: string): boolean {
  const [address, bits, ...rest] = entry.split('/');
  const family = isIP(address ?? '');
  if (family === 0 || rest.length > 0) return false;
  if (bits === undefined) return true;
  const prefix = Number(bits);
  return /^\d{1,3}$/.test(bits) && prefix <= (family === 4 ? 32 : 128);
}

/**
 * Default node-wide bound on sessions being set up, per worker: a worker admits a few hundred
 * joins/s (DTLS handshakes are its work; bench/results/legacy/flashcrowd-250k.json: 400 in 1.3 s), so 64
 * in flight is a fraction of a second of queue. 256 was tried (flashcrowd-250k-max-pending-256.json,
 * one run): 800 of 800 admitted against 728 with 64, but only 639 of them got media in the run and
 * answer p95 was 26.7 s (3.1 s with 64) — the pile-up the bound exists to prevent.
 */
export const PENDING_SESSIONS_PER_WORKER = 64;

/** Quotas that bound what one client (or the whole node) can make the node hold. */
export interface LimitsConfig {
  maxPendingSessions: number;
  admissionQueueMs: number;
  maxPendingSessionsPerClient: number;
  renditionStartsPerClient: number;
  maxNumberingsPerStream: number;
  maxStreams: number;
  maxPublishesPerClient: number;
}

export interface ClusterConfig {
  redisUrl: string;
  redisPrefix: string;
  nodeId: string;
  region: string;
  internalAddress: string;
  clusterSecret: string;
  pipePortRange: [number, number];
  relayLingerMs: number;
  regionalRelay: boolean;
  sourceLossGraceMs: number;
}

export interface TranscodeConfig {
  profiles: Profile[];
  ffmpegPath: string;
  maxJobs: number;
  lingerMs: number;
  otherRegions: boolean;
  /** Viewers without ?profile play the rendition ladder (ADAPTIVE_LADDER). */
  adaptiveLadder: boolean;
}

export interface HlsConfig {
  enabled: boolean;
  ffmpegPath: string;
  maxJobs: number;
  lingerMs: number;
  segmentUrlTtlMs: number;
  playlistUrlTtlMs: number;
}

export interface TlsFilesConfig {
  certFile: string;
  keyFile: string;
}

export interface MediaNodeConfig {
  role: Role;
  transcode: TranscodeConfig;
  hls: HlsConfig;
  adminToken: string | undefined;
  aclApi: 'local' | 'kubernetes';
  access: AccessConfig & { allowQueryKey: boolean };
  /** Present when the node is part of a multi-node CDN (REDIS_URL set); absent standalone. */
  cluster: ClusterConfig | undefined;
  host: string;
  internalHost: string;
  /** The internal port: metrics and stream list always, the node-to-node API in a CDN. */
  internalPort: number;
  trustedProxies: string[];
  limits: LimitsConfig;
  httpPort: number;
  /** TLS of the public port (HTTPS, HTTP/2); absent: plain HTTP/1.1. */
  tls: TlsFilesConfig | undefined;
  rtcPort: number;
  rtcListenIp: string;
  announcedAddress: string;
  workers: number;
  publishToken: string | undefined;
  logLevel: (typeof LOG_LEVELS)[number];
  connectTimeoutMs: number;
  fanoutLingerMs: number;
  shutdownTimeoutMs: number;
  drainDeadlineMs: number;
  demoPage: boolean;
}

/** Parses the environment; throws ConfigError with a one-line message naming the variable. */
export function loadConfig(env: NodeJS.ProcessEnv = process.env): MediaNodeConfig {
  const parsed = parseEnvironment(EnvSchema, env);
  const workers = parsed.WORKERS ?? Math.max(1, os.availableParallelism());
  const announcedAddress = parsed.ANNOUNCED_IP ?? defaultAnnouncedAddress(parsed.RTC_LISTEN_IP);
  return {
    role: parsed.ROLE,
    transcode: {
      profiles: parsed.PROFILES,
      ffmpegPath: parsed.FFMPEG_PATH,
      maxJobs: parsed.TRANSCODER_MAX_JOBS,
      lingerMs: parsed.TRANSCODE_LINGER_MS,
      otherRegions: parsed.TRANSCODE_OTHER_REGIONS,
      adaptiveLadder: parsed.ADAPTIVE_LADDER,
    },
    hls: {
      enabled: parsed.HLS,
      ffmpegPath: parsed.FFMPEG_PATH,
      maxJobs: parsed.HLS_MAX_JOBS,
      lingerMs: parsed.HLS_LINGER_MS,
      segmentUrlTtlMs: parsed.HLS_SEGMENT_URL_TTL_MS,
      playlistUrlTtlMs: parsed.HLS_PLAYLIST_URL_TTL_MS,
    },
    adminToken: parsed.ADMIN_TOKEN,
    aclApi: parsed.ACL_API,
    access: {
      defaultPolicy: parsed.ACL_DEFAULT_POLICY,
      maxStalenessMs: parsed.ACL_MAX_STALENESS_MS,
      failuresPerClientIp: parsed.ACL_FAILURES_PER_CLIENT,
      failuresPerStream: parsed.ACL_FAILURES_PER_STREAM,
      failureWindowMs: parsed.ACL_FAILURE_WINDOW_MS,
      operatorManaged: parsed.ACL_API === 'kubernetes',
      allowQueryKey: parsed.ACL_QUERY_KEY,
    },
    cluster:
      parsed.REDIS_URL === undefined
        ? undefined
        : {
            redisUrl: parsed.REDIS_URL,
            redisPrefix: parsed.REDIS_PREFIX,
            nodeId: parsed.NODE_ID ?? os.hostname(),
            region: parsed.REGION,
            internalAddress: internalAddress(parsed.INTERNAL_ADDRESS, announcedAddress),
            // Checked by the schema: REDIS_URL requires CLUSTER_SECRET.
            clusterSecret: parsed.CLUSTER_SECRET!,
            pipePortRange: parsed.PIPE_PORT_RANGE,
            relayLingerMs: parsed.RELAY_LINGER_MS,
            regionalRelay: parsed.REGIONAL_RELAY,
            sourceLossGraceMs: parsed.SOURCE_LOSS_GRACE_MS,
          },
    host: parsed.HOST,
    internalHost: parsed.INTERNAL_HOST ?? (parsed.REDIS_URL === undefined ? '127.0.0.1' : parsed.HOST),
    internalPort: parsed.INTERNAL_PORT,
    trustedProxies: parsed.TRUSTED_PROXIES,
    limits: {
      maxPendingSessions: parsed.MAX_PENDING_SESSIONS ?? PENDING_SESSIONS_PER_WORKER * workers,
      admissionQueueMs: parsed.ADMISSION_QUEUE_MS,
      maxPendingSessionsPerClient: parsed.MAX_PENDING_SESSIONS_PER_CLIENT,
      renditionStartsPerClient: parsed.RENDITION_STARTS_PER_CLIENT,
      maxNumberingsPerStream: parsed.MAX_NUMBERINGS_PER_STREAM,
      maxStreams: parsed.MAX_STREAMS,
      maxPublishesPerClient: parsed.MAX_PUBLISHES_PER_CLIENT,
    },
    httpPort: parsed.PORT,
    tls:
      parsed.TLS_CERT_FILE !== undefined && parsed.TLS_KEY_FILE !== undefined
        ? { certFile: parsed.TLS_CERT_FILE, keyFile: parsed.TLS_KEY_FILE }
        : undefined,
    rtcPort: rtcPortOf(parsed.RTC_PORT, parsed.POD_INDEX, workers),
    rtcListenIp: parsed.RTC_LISTEN_IP,
    announcedAddress,
    workers,
    publishToken: parsed.PUBLISH_TOKEN,
    logLevel: parsed.LOG_LEVEL,
    connectTimeoutMs: parsed.CONNECT_TIMEOUT_MS,
    fanoutLingerMs: parsed.FANOUT_LINGER_MS,
    shutdownTimeoutMs: parsed.SHUTDOWN_TIMEOUT_MS,
    drainDeadlineMs: parsed.DRAIN_DEADLINE_MS,
    demoPage: parsed.DEMO_PAGE,
  };
}

/** The first WebRTC port of this pod: its group's base, offset by its ordinal (POD_INDEX). */
function rtcPortOf(base: number, podIndex: number, workers: number): number {
  const first = base + podIndex * workers;
  if (first + workers - 1 > 65535) {
    throw new ConfigError(
      `invalid configuration: RTC_PORT ${base} + POD_INDEX ${podIndex} × WORKERS ${workers} leaves no room for ${workers} ports below 65536`,
    );
  }
  return first;
}

/** Other nodes accept only IP addresses in internal URLs (the contract's redis/keys.ts). */
function internalAddress(configured: string | undefined, announcedAddress: string): string {
  const address = configured ?? announcedAddress;
  if (isIP(address) === 0) {
    throw new ConfigError(
      `invalid configuration: INTERNAL_ADDRESS must be set to an IP address when ANNOUNCED_IP is a host name (got ${JSON.stringify(announcedAddress)})`,
    );
  }
  return address;
}

/**
 * ICE candidates must carry an address peers can reach. A wildcard listen address is not one,
 * so fall back to the first external IPv4 of this host (or loopback on an isolated machine).
 */
function defaultAnnouncedAddress(listenIp: string): string {
  if (listenIp !== '0.0.0.0' && listenIp !== '::') return listenIp;
  for (const addresses of Object.values(os.networkInterfaces())) {
    for (const address of addresses ?? []) {
      if (address.family === 'IPv4' && !address.internal) return address.address;
    }
  }
  return '127.0.0.1';
}
