/** The built-in edge autoscaler: the edge Nodes a CDN controls, re-evaluated when their CDN changes. */
import type { Controller } from '../../runtime/Controller.js';
import { ControllerBuilder, requestFor, specChanged } from '../../runtime/ControllerBuilder.js';
import { InvalidObject } from '../../runtime/TypedCache.js';
import { nodesOfCdn } from '../caches.js';
import type { ControllerContext } from '../context.js';
import { AutoscalerReconciler, isAutoscaledEdge } from './reconciler.js';

export function setupAutoscalerController(context: ControllerContext): Controller {
  const { caches, client, readers, events, logger, metrics, autoscaler } = context;
  return new ControllerBuilder('autoscaler', context)
    .for(caches.nodes, {
      predicate: (event) =>
        specChanged(event) && !(event.object instanceof InvalidObject) && isAutoscaledEdge(event.object),
    })
    .watches(
      caches.cdns,
      ({ object: cdn }) =>
        nodesOfCdn(caches.nodes, cdn.metadata.namespace, cdn.metadata.name)
          .filter(isAutoscaledEdge)
          .map(requestFor),
      { predicate: specChanged },
    )
    .complete(
      new AutoscalerReconciler({
        client,
        cdns: caches.cdns,
        readers,
        events,
        logger: logger.child({ controller: 'autoscaler' }),
        metrics,
        ...autoscaler,
      }),
    );
}
