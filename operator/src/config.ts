/**
 * The operator's configuration: environment variables only, validated once at start. A bad
 * value is reported in one line naming the variable (main exits with code 2).
 */
import { hostname } from 'node:os';
import { z } from 'zod';
import {
  booleanFlag,
  ConfigError,
  milliseconds,
  optionalNonEmpty,
  parseEnvironment,
} from '../../media-node/contract/runtime.js';
import { dnsLabel, dnsSubdomain, isDnsLabel } from './kube/names.js';
import { LOG_LEVELS } from './logger.js';

const namespaceName = () => dnsLabel('must be a namespace name (a DNS label)');

export const OperatorEnvSchema = z
  .object({
    /**
     * `controllers`: the reconcilers (leader-elected). `acl-api`: only the ACL REST API, as its
     * own Deployment with its own ServiceAccount: it needs rights (writing StreamACLs and
     * Secrets) the controllers do not, and the controllers need rights it does not.
     */
    OPERATOR_MODE: z
      .enum(['controllers', 'acl-api'], { error: 'must be controllers or acl-api' })
      .default('controllers'),
    /** kubeconfig file; in-cluster configuration (service account) when unset. */
    KUBECONFIG: optionalNonEmpty,
    /** One namespace to watch; every namespace when unset or empty. */
    WATCH_NAMESPACE: optionalNonEmpty.pipe(namespaceName().optional()),
    LEADER_ELECTION: booleanFlag('true'),
    /** Namespace of the operator (and of its leader Lease); from the downward API in a pod. */
    OPERATOR_NAMESPACE: optionalNonEmpty.pipe(namespaceName().optional()),
    /** This instance's identity in the Lease; from the downward API in a pod. */
    POD_NAME: optionalNonEmpty,
    LEASE_NAME: dnsSubdomain('must be a DNS subdomain').default('rtccdn-operator'),
    LEASE_DURATION_MS: milliseconds(15_000, 1_000, 300_000),
    RENEW_DEADLINE_MS: milliseconds(10_000, 500, 300_000),
    RETRY_PERIOD_MS: milliseconds(2_000, 100, 60_000),
    /** /healthz, /readyz and /metrics; 0 picks a free port. */
    HEALTH_PORT: z.coerce
      .number({ error: 'must be a number' })
      .int('must be an integer')
      .min(0, 'must be between 0 and 65535')
      .max(65535, 'must be between 0 and 65535')
      .default(8090),
    HEALTH_HOST: z.string().min(1).default('0.0.0.0'),
    LOG_LEVEL: z.enum(LOG_LEVELS, { error: `must be one of ${LOG_LEVELS.join(', ')}` }).default('info'),
    /** Concurrent reconciles per controller. */
    WORKERS: z.coerce.number({ error: 'must be a number' }).int().min(1).max(32).default(2),
    /** Every cached object is reconciled again this often. */
    RESYNC_PERIOD_MS: milliseconds(10 * 60_000, 1_000, 24 * 3_600_000),
    /** CDN and Node statuses (viewers, streams) are refreshed from Redis this often. */
    STATUS_REFRESH_MS: milliseconds(30_000, 200, 3_600_000),
    AUTOSCALER_INTERVAL_MS: milliseconds(15_000, 100, 3_600_000),
    /** Edges are scaled down only once their count has not changed for this long. */
    AUTOSCALER_STABILIZATION_MS: milliseconds(5 * 60_000, 0, 24 * 3_600_000),
    /** A draining edge is removed after this long even with viewers left. */
    AUTOSCALER_DRAIN_GRACE_MS: milliseconds(10 * 60_000, 0, 24 * 3_600_000),
    /** Server-side timeout of each watch (seconds); randomised up to twice this. */
    WATCH_TIMEOUT_SECONDS: z.coerce.number().int().min(1).max(3_600).default(300),
    /** Bearer token of the ACL REST API (OPERATOR_MODE=acl-api; required there). */
    ADMIN_TOKEN: z
      .string()
      .optional()
      .transform((value) => (value?.trim() ? value.trim() : undefined))
      .pipe(z.string().min(16, 'must be at least 16 characters').optional()),
    ACL_API_PORT: z.coerce
      .number({ error: 'must be a number' })
      .int('must be an integer')
      .min(1, 'must be between 1 and 65535')
      .max(65535, 'must be between 1 and 65535')
      .default(8091),
    /**
     * Where the ACL REST API is reached (set by the chart when it runs one): reported in CDN
     * statuses (status.aclApiUrl).
     */
    ACL_API_URL: optionalNonEmpty.pipe(
      z.url({ protocol: /^https?$/, error: 'must be an http(s) URL' }).optional(),
    ),
    /** `namespace/name` of the CDN an ACL API call applies to when it names none. */
    ACL_API_DEFAULT_CDN: optionalNonEmpty.pipe(
      z
        .string()
        .refine((value) => {
          const parts = value.split('/');
          return parts.length === 2 && parts.every(isDnsLabel);
        }, 'must be namespace/name (DNS labels)')
        .optional(),
    ),
  })
  .refine((env) => env.OPERATOR_MODE !== 'acl-api' || env.ADMIN_TOKEN !== undefined, {
    message: 'is required with OPERATOR_MODE=acl-api',
    path: ['ADMIN_TOKEN'],
  })
  .refine((env) => env.OPERATOR_MODE !== 'controllers' || env.ADMIN_TOKEN === undefined, {
    message: 'is only used with OPERATOR_MODE=acl-api (the ACL API runs apart from the controllers)',
    path: ['ADMIN_TOKEN'],
  })
  .refine(
    (env) => env.OPERATOR_MODE === 'acl-api' || !env.LEADER_ELECTION || env.OPERATOR_NAMESPACE !== undefined,
    {
      message: 'is required with LEADER_ELECTION=true (the namespace of the leader Lease)',
      path: ['OPERATOR_NAMESPACE'],
    },
  )
  .refine((env) => env.RENEW_DEADLINE_MS < env.LEASE_DURATION_MS, {
    message: 'must be shorter than LEASE_DURATION_MS',
    path: ['RENEW_DEADLINE_MS'],
  })
  .refine((env) => env.RETRY_PERIOD_MS < env.RENEW_DEADLINE_MS, {
    message: 'must be shorter than RENEW_DEADLINE_MS',
    path: ['RETRY_PERIOD_MS'],
  });

export type OperatorEnv = z.output<typeof OperatorEnvSchema>;

export interface OperatorConfig {
  mode: 'controllers' | 'acl-api';
  kubeconfigPath: string | undefined;
  watchNamespace: string | undefined;
  leaderElection:
    | {
        namespace: string;
        leaseName: string;
        leaseDurationMs: number;
        renewDeadlineMs: number;
        retryPeriodMs: number;
      }
    | undefined;
  identity: string;
  health: { host: string; port: number };
  logLevel: (typeof LOG_LEVELS)[number];
  workers: number;
  resyncMs: number;
  statusRefreshMs: number;
  autoscaler: { intervalMs: number; stabilizationMs: number; drainGraceMs: number };
  watchTimeoutSeconds: number;
  /** Where users reach the ACL REST API (reported in CDN statuses). */
  aclApiUrl: string | undefined;
  /** The ACL REST API (OPERATOR_MODE=acl-api). */
  aclApi: { port: number; adminToken: string; defaultCdn: string | undefined } | undefined;
}

export { ConfigError };

/** Parses the environment; throws ConfigError with a one-line message naming the variable. */
export function loadOperatorConfig(env: NodeJS.ProcessEnv = process.env): OperatorConfig {
  const parsed = parseEnvironment(OperatorEnvSchema, env);
  return {
    mode: parsed.OPERATOR_MODE,
    kubeconfigPath: parsed.KUBECONFIG,
    watchNamespace: parsed.WATCH_NAMESPACE,
    leaderElection:
      parsed.LEADER_ELECTION && parsed.OPERATOR_NAMESPACE
        ? {
            namespace: parsed.OPERATOR_NAMESPACE,
            leaseName: parsed.LEASE_NAME,
            leaseDurationMs: parsed.LEASE_DURATION_MS,
            renewDeadlineMs: parsed.RENEW_DEADLINE_MS,
            retryPeriodMs: parsed.RETRY_PERIOD_MS,
          }
        : undefined,
    // Pod names are unique; outside a pod, the host name plus pid tells instances apart.
    identity: parsed.POD_NAME ?? `${hostname()}-${process.pid}`,
    health: { host: parsed.HEALTH_HOST, port: parsed.HEALTH_PORT },
    logLevel: parsed.LOG_LEVEL,
    workers: parsed.WORKERS,
    resyncMs: parsed.RESYNC_PERIOD_MS,
    statusRefreshMs: parsed.STATUS_REFRESH_MS,
    autoscaler: {
      intervalMs: parsed.AUTOSCALER_INTERVAL_MS,
      stabilizationMs: parsed.AUTOSCALER_STABILIZATION_MS,
      drainGraceMs: parsed.AUTOSCALER_DRAIN_GRACE_MS,
    },
    watchTimeoutSeconds: parsed.WATCH_TIMEOUT_SECONDS,
    aclApiUrl: parsed.ACL_API_URL,
    aclApi: parsed.ADMIN_TOKEN
      ? { port: parsed.ACL_API_PORT, adminToken: parsed.ADMIN_TOKEN, defaultCdn: parsed.ACL_API_DEFAULT_CDN }
      : undefined,
  };
}
