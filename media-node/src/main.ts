import { exitOnShutdownSignals, listenerErrors } from '../contract/runtime.js';
import { ConfigError, loadConfig } from './config.js';
import { createInternalServer } from './http/internal.js';
import { createHttpServer } from './http/server.js';
import { readTlsPair } from './http/tls.js';
import { createLogger } from './logger.js';
import { MediaNode } from './MediaNode.js';

/**
 * Entry point: one media node configured from the environment. Exit codes: 0 after a clean
 * SIGTERM/SIGINT shutdown, 2 for invalid configuration, 1 for a failure to start.
 */
async function main(): Promise<void> {
  let config: ReturnType<typeof loadConfig>;
  try {
    config = loadConfig();
    // An unreadable or unusable certificate is a configuration error too, found before start.
    if (config.tls) readTlsPair(config.tls);
  } catch (error) {
    if (error instanceof ConfigError) {
      process.stderr.write(`rtccdn media-node: ${error.message}\n`);
      process.exit(2);
    }
    throw error;
  }

  const logger = createLogger(config.logLevel, {
    role: config.role,
    ...(config.cluster ? { node: config.cluster.nodeId, region: config.cluster.region } : {}),
  });
  listenerErrors.report = (emitter, event, error) =>
    logger.error({ err: error, emitter, event }, 'event listener threw (a bug; the node keeps running)');
  let node: MediaNode;
  try {
    node = await MediaNode.create(config, logger);
  } catch (error) {
    logger.fatal({ err: error }, 'cannot start the media workers');
    process.stderr.write(`rtccdn media-node: ${(error as Error).message}\n`);
    process.exit(1);
  }
  const scheme = config.tls ? 'https' : 'http';
  let app: Awaited<ReturnType<typeof createHttpServer>>;
  try {
    app = await createHttpServer(node);
  } catch (error) {
    // The TLS files changed between the check above and now.
    process.stderr.write(`rtccdn media-node: ${(error as Error).message}\n`);
    await node.close();
    process.exit(error instanceof ConfigError ? 2 : 1);
  }
  const internal = await createInternalServer(node);
  const listeners: [typeof app, string, number][] = [
    [app, config.host, config.httpPort],
    [internal, config.internalHost, config.internalPort],
  ];
  for (const [server, host, port] of listeners) {
    try {
      await server.listen({ host, port });
    } catch (error) {
      process.stderr.write(
        `rtccdn media-node: cannot listen on ${host}:${port}: ${(error as Error).message}\n`,
      );
      await node.close();
      process.exit(1);
    }
  }
  if (config.role === 'all' && config.adminToken === undefined && !config.cluster) {
    logger.warn(
      'ADMIN_TOKEN is not set: the ACL API (/api/v1/streams/{stream}/acl) accepts changes from anyone who can reach this port',
    );
  }
  logger.info(
    {
      aclDefaultPolicy: config.access.defaultPolicy,
      http: `${scheme}://${config.host}:${config.httpPort}`,
      internalPort: `${config.internalHost}:${config.internalPort}`,
      ...(config.cluster
        ? {
            nodeId: config.cluster.nodeId,
            region: config.cluster.region,
            internal: `http://${config.cluster.internalAddress}:${config.internalPort}`,
            pipePorts: config.cluster.pipePortRange.join('-'),
          }
        : { cluster: 'standalone (no REDIS_URL)' }),
      rtcPorts: `${config.rtcPort}-${config.rtcPort + config.workers - 1}`,
      announcedAddress: config.announcedAddress,
      workers: config.workers,
      publishToken: config.publishToken ? 'required' : 'not required',
    },
    'media node ready',
  );
  if (config.demoPage) {
    const shown = config.host === '0.0.0.0' || config.host === '::' ? 'localhost' : config.host;
    process.stderr.write(
      `\n  rtccdn is running — open ${scheme}://${shown}:${config.httpPort}/ to publish and play\n\n`,
    );
  }

  // The node first: from the signal on /readyz answers 503 and new sessions are refused; an edge
  // of a CDN with viewers drains (they keep playing until they leave or DRAIN_DEADLINE_MS ends
  // their sessions, `node-draining`), then every session is closed (DTLS close to each peer);
  // then the HTTP servers go. The pod's terminationGracePeriodSeconds covers both.
  exitOnShutdownSignals(logger, node.shutdownBudgetMs, async () => {
    await node.drainThenClose();
    await app.close();
    await internal.close();
  });
}

void main();
