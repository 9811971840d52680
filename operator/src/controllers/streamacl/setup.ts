/**
 * The StreamACL controller and the full sync of ACL stores (a Redis that lost its data gets
 * every StreamACL of its CDNs rewritten at once), which share one reconciler.
 */
import type { Controller } from '../../runtime/Controller.js';
import { ControllerBuilder, requestFor, specChanged } from '../../runtime/ControllerBuilder.js';
import { InvalidObject } from '../../runtime/TypedCache.js';
import type { CachedStreamACL } from '../caches.js';
import type { ControllerContext } from '../context.js';
import { LABELS } from '../shared.js';
import { AclStoreSync } from './AclStoreSync.js';
import { StreamAclReconciler } from './reconciler.js';

export function setupStreamAclController(context: ControllerContext): {
  controller: Controller;
  storeSync: AclStoreSync;
} {
  const { caches, client, aclStores, events, logger, metrics, aclStoreCheckMs } = context;
  const reconciler = new StreamAclReconciler({
    client,
    streamAcls: caches.streamAcls,
    cdns: caches.cdns,
    secrets: caches.keySecrets,
    managedSecrets: caches.secrets,
    stores: aclStores,
    events,
    logger: logger.child({ controller: 'streamacl' }),
  });
  const aclsWhere = (namespace: string | undefined, test: (acl: CachedStreamACL) => boolean) =>
    caches.streamAcls
      .list(namespace ?? '')
      .filter(test)
      .map(requestFor);

  const controller = new ControllerBuilder('streamacl', context)
    .for(caches.streamAcls, { predicate: specChanged })
    // Every other StreamACL of its CDN guarding the same streams: one of them owns the pattern,
    // and when it goes or changes, another may take over.
    .watches(
      caches.streamAcls,
      ({ object: acl }) =>
        acl instanceof InvalidObject
          ? []
          : aclsWhere(
              acl.metadata.namespace,
              (other) =>
                other.spec.cdnRef.name === acl.spec.cdnRef.name && other.spec.stream === acl.spec.stream,
            ),
      { predicate: specChanged },
    )
    .watches(
      caches.cdns,
      ({ object: cdn }) =>
        aclsWhere(cdn.metadata.namespace, (acl) => acl.spec.cdnRef.name === cdn.metadata.name),
      { predicate: specChanged },
    )
    // A Secret of access keys changed: the StreamACLs that read it, and those of the CDN it is
    // labelled with (the ACL API labels the Secrets it writes).
    .watches(caches.keySecrets, ({ object: secret }) => {
      const cdn = secret.metadata.labels?.[LABELS.cdn];
      return aclsWhere(
        secret.metadata.namespace,
        (acl) =>
          acl.spec.keys.some((key) => key.secretKeyRef?.name === secret.metadata.name) ||
          (cdn !== undefined && acl.spec.cdnRef.name === cdn),
      );
    })
    .complete(reconciler);

  const storeSync = new AclStoreSync({
    client,
    cdns: caches.cdns,
    streamAcls: caches.streamAcls,
    stores: aclStores,
    syncAcl: (namespace, name) => reconciler.syncAcl(namespace, name),
    intervalMs: aclStoreCheckMs,
    metrics,
    logger,
  });
  return { controller, storeSync };
}
