/** The CDN controller: CDNs, and the Nodes, Services, ConfigMap and Secret each one controls. */
import type { Controller } from '../../runtime/Controller.js';
import { ControllerBuilder, specChanged } from '../../runtime/ControllerBuilder.js';
import type { ControllerContext } from '../context.js';
import { CdnReconciler } from './reconciler.js';

export function setupCdnController(context: ControllerContext): Controller {
  const { caches, client, readers, events, logger, statusRefreshMs, aclApiUrl } = context;
  return new ControllerBuilder('cdn', context)
    .for(caches.cdns, { predicate: specChanged })
    .owns(caches.nodes)
    .owns(caches.services)
    .owns(caches.configMaps)
    .owns(caches.secrets)
    .complete(
      new CdnReconciler({
        client,
        nodes: caches.nodes,
        services: caches.services,
        readers,
        events,
        logger: logger.child({ controller: 'cdn' }),
        statusRefreshMs,
        aclApiUrl,
      }),
    );
}
