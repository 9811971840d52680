/**
 * The Node controller: Nodes, the StatefulSet and headless Service each one controls, and what
 * their pods are made from — the CDN a Node references and that CDN's cluster Secret.
 */
import type { Controller } from '../../runtime/Controller.js';
import { ControllerBuilder, requestFor, specChanged } from '../../runtime/ControllerBuilder.js';
import { nodesOfCdn } from '../caches.js';
import type { ControllerContext } from '../context.js';
import { LABELS } from '../shared.js';
import { NodeReconciler } from './reconciler.js';

export function setupNodeController(context: ControllerContext): Controller {
  const { caches, client, readers, events, logger, statusRefreshMs } = context;
  return (
    new ControllerBuilder('node', context)
      .for(caches.nodes, { predicate: specChanged })
      .owns(caches.statefulSets)
      .owns(caches.services)
      // Pods are the StatefulSet's, not the Node's: mapped by their Node label.
      .watches(caches.pods, ({ object: pod }) => {
        const node = pod.metadata.labels?.[LABELS.node];
        return node === undefined ? [] : [{ namespace: pod.metadata.namespace ?? '', name: node }];
      })
      .watches(
        caches.cdns,
        ({ object: cdn }) =>
          nodesOfCdn(caches.nodes, cdn.metadata.namespace, cdn.metadata.name).map(requestFor),
        { predicate: specChanged },
      )
      // The cluster Secret carries its CDN's label; its hash rolls the pods.
      .watches(caches.secrets, ({ object: secret }) =>
        nodesOfCdn(caches.nodes, secret.metadata.namespace, secret.metadata.labels?.[LABELS.cdn]).map(
          requestFor,
        ),
      )
      .complete(
        new NodeReconciler({
          client,
          cdns: caches.cdns,
          statefulSets: caches.statefulSets,
          services: caches.services,
          pods: caches.pods,
          readers,
          events,
          logger: logger.child({ controller: 'node' }),
          statusRefreshMs,
        }),
      )
  );
}
