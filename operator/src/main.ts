/**
 * Entry point of the rtccdn operator (`node --import tsx operator/src/main.ts`).
 *
 * Exit codes: 0 after SIGTERM/SIGINT (controllers stopped, leader lease released), 2 for an
 * invalid configuration (one line naming the variable), 1 when it cannot start (kubeconfig
 * unreadable, health port taken) or when its controllers fail (logged first).
 */
import { exitOnShutdownSignals } from '../../media-node/contract/runtime.js';
import { createAclApiServer } from './aclapi/server.js';
import { ConfigError, loadOperatorConfig, type OperatorConfig } from './config.js';
import { startHealthServer } from './health.js';
import { KubeClient } from './kube/client.js';
import { KubeConfigTransport } from './kube/transport.js';
import { createLogger } from './logger.js';
import { Manager } from './manager.js';
import { OperatorMetrics } from './metrics.js';

/** SIGTERM must not hang: controllers and the lease get this long, then the process exits. */
const SHUTDOWN_TIMEOUT_MS = 20_000;

async function main(): Promise<void> {
  let config: OperatorConfig;
  try {
    config = loadOperatorConfig();
  } catch (error) {
    if (error instanceof ConfigError) {
      process.stderr.write(`rtccdn operator: ${error.message}\n`);
      process.exit(2);
    }
    throw error;
  }

  const logger = createLogger(config.logLevel, { instance: config.identity });
  let transport: KubeConfigTransport;
  try {
    transport = KubeConfigTransport.fromSource({ kubeconfigPath: config.kubeconfigPath });
  } catch (error) {
    process.stderr.write(
      `rtccdn operator: cannot load the Kubernetes configuration: ${(error as Error).message}\n`,
    );
    process.exit(1);
  }
  const metrics = new OperatorMetrics();
  if (config.mode === 'acl-api') return serveAclApi(config, transport, metrics, logger);
  const manager = new Manager({
    client: new KubeClient(transport),
    logger,
    metrics,
    identity: config.identity,
    watchNamespace: config.watchNamespace,
    leaderElection: config.leaderElection,
    workers: config.workers,
    resyncMs: config.resyncMs,
    statusRefreshMs: config.statusRefreshMs,
    aclApiUrl: config.aclApiUrl,
    autoscaler: config.autoscaler,
    watch: { timeoutSeconds: config.watchTimeoutSeconds },
    onFailure: () => process.exit(1),
  });
  const health = await listenOrExit(config, () =>
    startHealthServer({
      ...config.health,
      registry: metrics.registry,
      isReady: () => manager.ready,
      isHealthy: () => manager.healthy,
    }),
  );

  manager.start();
  logger.info(
    {
      server: transport.server,
      namespace: config.watchNamespace ?? '(all)',
      leaderElection: config.leaderElection
        ? `${config.leaderElection.namespace}/${config.leaderElection.leaseName}`
        : 'off',
      healthPort: health.port,
    },
    'operator started',
  );

  exitOnShutdownSignals(logger, SHUTDOWN_TIMEOUT_MS, async () => {
    await manager.stop();
    await health.close();
    transport.close();
  });
}

/**
 * OPERATOR_MODE=acl-api: the ACL REST API alone (every replica serves; it only writes
 * Kubernetes objects, the controllers' leader syncs them), with /healthz, /readyz and /metrics.
 */
async function serveAclApi(
  config: OperatorConfig,
  transport: KubeConfigTransport,
  metrics: OperatorMetrics,
  logger: ReturnType<typeof createLogger>,
): Promise<void> {
  const settings = config.aclApi!; // the config requires ADMIN_TOKEN in this mode
  const api = await createAclApiServer({
    client: new KubeClient(transport),
    adminToken: settings.adminToken,
    defaultCdn: settings.defaultCdn,
    namespace: config.watchNamespace,
    logger,
  });
  await listenOrExit(config, async () => {
    await api.listen({ host: config.health.host, port: settings.port });
    return { port: settings.port };
  });
  const health = await listenOrExit(config, () =>
    startHealthServer({
      ...config.health,
      registry: metrics.registry,
      isReady: () => true,
      isHealthy: () => true,
    }),
  );
  logger.info(
    { server: transport.server, namespace: config.watchNamespace ?? '(all)', aclApiPort: settings.port },
    'ACL API started',
  );
  exitOnShutdownSignals(logger, SHUTDOWN_TIMEOUT_MS, async () => {
    await api.close();
    await health.close();
    transport.close();
  });
}

/** Runs `listen`; a port that cannot be taken ends the process with one line (exit 1). */
async function listenOrExit<T>(config: OperatorConfig, listen: () => Promise<T>): Promise<T> {
  try {
    return await listen();
  } catch (error) {
    process.stderr.write(
      `rtccdn operator: cannot listen on ${config.health.host}: ${(error as Error).message}\n`,
    );
    process.exit(1);
  }
}

void main();
