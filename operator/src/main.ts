/**
 * Entry point of the rtccdn operator (`node --import tsx operator/src/main.ts`).
 *
 * Exit codes: 0 after SIGTERM/SIGINT (controllers stopped, leader lease released), 2 for an
 * invalid configuration (one line naming the variable), 1 when it cannot start (kubeconfig
 * unreadable, health port taken) or when its controllers fail (logged first).
 */
import { exitOnShutdownSignals } from '../../media-node/src/shutdown.js';
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
    autoscaler: config.autoscaler,
    watch: { timeoutSeconds: config.watchTimeoutSeconds },
    onFailure: () => process.exit(1),
  });

  let health: Awaited<ReturnType<typeof startHealthServer>>;
  try {
    health = await startHealthServer({
      ...config.health,
      registry: metrics.registry,
      isReady: () => manager.ready,
      isHealthy: () => manager.healthy,
    });
  } catch (error) {
    process.stderr.write(
      `rtccdn operator: cannot listen on ${config.health.host}:${config.health.port}: ${(error as Error).message}\n`,
    );
    process.exit(1);
  }

  // Served by every replica: it only writes Kubernetes objects, the leader syncs them.
  let aclApi: Awaited<ReturnType<typeof createAclApiServer>> | undefined;
  if (config.aclApi) {
    aclApi = await createAclApiServer({
      client: new KubeClient(transport),
      adminToken: config.aclApi.adminToken,
      defaultCdn: config.aclApi.defaultCdn,
      namespace: config.watchNamespace,
      logger,
    });
    try {
      await aclApi.listen({ host: config.health.host, port: config.aclApi.port });
    } catch (error) {
      process.stderr.write(
        `rtccdn operator: cannot listen on ${config.health.host}:${config.aclApi.port}: ${(error as Error).message}\n`,
      );
      process.exit(1);
    }
  } else {
    logger.info('ADMIN_TOKEN is not set: the ACL REST API is off (StreamACLs via kubectl only)');
  }

  manager.start();
  logger.info(
    {
      server: transport.server,
      namespace: config.watchNamespace ?? '(all)',
      leaderElection: config.leaderElection
        ? `${config.leaderElection.namespace}/${config.leaderElection.leaseName}`
        : 'off',
      healthPort: health.port,
      aclApiPort: config.aclApi?.port ?? 'off',
    },
    'operator started',
  );

  exitOnShutdownSignals(logger, SHUTDOWN_TIMEOUT_MS, async () => {
    await aclApi?.close();
    await manager.stop();
    await health.close();
    transport.close();
  });
}

void main();
