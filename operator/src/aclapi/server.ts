/**
 * The ACL REST API in Kubernetes: the same routes, bodies and answers as a media node's ACL API
 * (the contract's acl-api, media-node/contract/acl-api.ts), so a backend written against the standalone CDN keeps working —
 * but the source of truth is the Kubernetes API: each call writes a StreamACL and a Secret
 * holding the key values, and the StreamACL controller syncs them to the edges. A call returns
 * once the change is synced (or 202 if that takes longer than a few seconds).
 *
 *   PUT    /api/v1/streams/{stream}/acl            PUT    replace the keys
 *   POST   /api/v1/streams/{stream}/acl/keys       add keys
 *   DELETE /api/v1/streams/{stream}/acl/keys/{id}  remove one key
 *   GET    /api/v1/streams/{stream}/acl            ids and expiry
 *   DELETE /api/v1/streams/{stream}/acl            drop the ACL
 *
 * Which CDN: `?cdn=<namespace>/<name>`, or ACL_API_DEFAULT_CDN, or the only CDN there is.
 * Served by every operator replica (it only writes Kubernetes objects), authenticated by
 * ADMIN_TOKEN. StreamACLs written with kubectl are shown but not changed through the API.
 */
import Fastify, { type FastifyBaseLogger, type FastifyInstance, type FastifyRequest } from 'fastify';
import type { AccessKeyInput } from '../../../media-node/contract/acl.js';
import { aclKeysBody, aclPatternParam, openApiDocument } from '../../../media-node/contract/acl-api.js';
import { installErrorHandler, QuietRequestLog, RtccdnError } from '../../../media-node/contract/errors.js';
import { TokenGuard } from '../../../media-node/contract/http.js';
import { type StreamACL, StreamACLSchema } from '../api/v1alpha1.js';
import type { KubeClient } from '../kube/client.js';
import { isDnsLabel } from '../kube/names.js';
import { SecretSchema, secretValue } from '../kube/objects.js';
import { CDN_TYPE, SECRET_TYPE, STREAM_ACL_TYPE } from '../kube/resources.js';
import type { Logger } from '../logger.js';
import { sleep } from '../runtime/backoff.js';
import {
  ACL_API_MANAGER,
  type ApiAcl,
  desiredKeysSecret,
  desiredStreamAcl,
  keysSecretName,
  streamAclName,
} from './objects.js';

export interface AclApiOptions {
  client: KubeClient;
  adminToken: string;
  /** `namespace/name` of the CDN used when a call names none. */
  defaultCdn?: string | undefined;
  /** Only CDNs of this namespace (the operator's watch scope). */
  namespace?: string | undefined;
  /** How long a call waits for the StreamACL to be Synced before answering 202. */
  syncWaitMs?: number;
  /** Failed ADMIN_TOKEN attempts per client per minute before 429 (default 10). */
  tokenFailuresPerClient?: number;
  logger: Logger;
}

interface AclView {
  stream: string;
  keys: { id: string; expiresAt?: string }[];
  updatedAt: string;
}

const BASE = '/api/v1/streams/:stream/acl';

export async function createAclApiServer(options: AclApiOptions): Promise<FastifyInstance> {
  const { client } = options;
  const app = Fastify({
    loggerInstance: options.logger.child({ component: 'acl-api' }) as FastifyBaseLogger,
    logController: new QuietRequestLog(),
    bodyLimit: 256 * 1024,
  });
  app.removeAllContentTypeParsers();
  app.addContentTypeParser('*', { parseAs: 'string' }, (_request, body, done) => done(null, body));
  installErrorHandler(app);
  const tokens = new TokenGuard({
    token: options.adminToken,
    realm: 'rtccdn-admin',
    failuresPerClient: options.tokenFailuresPerClient ?? 10,
    windowMs: 60_000,
  });
  app.addHook('onClose', async () => tokens.close());

  /** The target CDN: ?cdn=namespace/name, the configured default, or the only one. */
  const cdnOf = async (request: FastifyRequest): Promise<{ namespace: string; cdn: string }> => {
    const asked = (request.query as Record<string, unknown>)['cdn'];
    const ref = typeof asked === 'string' && asked ? asked : options.defaultCdn;
    if (ref) {
      const { namespace, cdn } = parseCdnRef(ref, options.namespace);
      if (options.namespace !== undefined && namespace !== options.namespace) {
        throw new RtccdnError(
          'CDN_NOT_FOUND',
          `no CDN ${namespace}/${cdn} (this operator serves namespace ${options.namespace})`,
        );
      }
      if (!(await client.get(CDN_TYPE, namespace, cdn)))
        throw new RtccdnError('CDN_NOT_FOUND', `no CDN ${namespace}/${cdn}`);
      return { namespace, cdn };
    }
    const cdns = (await client.list(CDN_TYPE, options.namespace)).items as {
      metadata: { name: string; namespace: string };
    }[];
    if (cdns.length === 1) return { namespace: cdns[0]!.metadata.namespace, cdn: cdns[0]!.metadata.name };
    throw new RtccdnError(
      'INVALID_REQUEST',
      cdns.length === 0
        ? 'no CDN exists yet'
        : `${cdns.length} CDNs exist: name one with ?cdn=<namespace>/<name>`,
    );
  };

  const keysOf = (request: FastifyRequest): AccessKeyInput[] => {
    const keys = aclKeysBody(request);
    // StreamACL key ids are DNS labels (they name keys in Secrets and status alike).
    const bad = keys.find((key) => !isDnsLabel(key.id));
    if (bad) {
      throw new RtccdnError(
        'INVALID_REQUEST',
        `key id "${bad.id}": in Kubernetes, key ids must be DNS labels (lower case, digits, -)`,
      );
    }
    return keys;
  };

  /** The StreamACL guarding `pattern` on the CDN, if any, and whether the API manages it. */
  const find = async (namespace: string, cdn: string, pattern: string) => {
    const items = (await client.list(STREAM_ACL_TYPE, namespace)).items;
    const acls = items.flatMap((item) => {
      const parsed = StreamACLSchema.safeParse(item);
      return parsed.success && parsed.data.spec.cdnRef.name === cdn && parsed.data.spec.stream === pattern
        ? [parsed.data]
        : [];
    });
    const managed = acls.find((acl) => acl.metadata.name === streamAclName(pattern));
    return { managed, other: acls.find((acl) => acl !== managed) };
  };

  /** The keys (values included) of the API-managed ACL, from its StreamACL and Secret. */
  const currentKeys = async (namespace: string, acl: StreamACL): Promise<AccessKeyInput[]> => {
    const raw = await client.get(SECRET_TYPE, namespace, keysSecretName(acl.metadata.name ?? ''));
    const secret = raw === undefined ? undefined : SecretSchema.parse(raw);
    return acl.spec.keys.flatMap((key) => {
      const value = secret ? secretValue(secret, key.id) : undefined;
      return value
        ? [{ id: key.id, key: value, ...(key.expiresAt ? { expiresAt: key.expiresAt } : {}) }]
        : [];
    });
  };

  const refuseForeign = (other: StreamACL | undefined, pattern: string) => {
    if (other) {
      throw new RtccdnError(
        'ACL_CONFLICT',
        `"${pattern}" is guarded by StreamACL ${other.metadata.name}, managed with kubectl; change it there`,
      );
    }
  };

  /**
   * Writes the Secret with the values, then the StreamACL referencing it (so the controller never
   * sees keys without values on purpose), then makes the Secret owned by the StreamACL, and waits
   * for the sync.
   */
  const write = async (
    acl: ApiAcl,
    existingUid: string | undefined,
  ): Promise<{ status: number; view: AclView }> => {
    const manager = { fieldManager: ACL_API_MANAGER };
    const owner = existingUid ? { uid: existingUid } : undefined;
    await client.apply(SECRET_TYPE, desiredKeysSecret(acl, owner), manager);
    const applied = (await client.apply(STREAM_ACL_TYPE, desiredStreamAcl(acl), manager)) as {
      metadata: { uid: string; generation: number };
    };
    if (!owner) await client.apply(SECRET_TYPE, desiredKeysSecret(acl, applied.metadata), manager);
    const synced = await waitForSync(acl.namespace, streamAclName(acl.pattern), applied.metadata.generation);
    return { status: synced ? 200 : 202, view: viewOf(acl.pattern, acl.keys) };
  };

  /**
   * True once the controller reports this generation Synced. A transient Synced=False (its cache
   * of Secrets may lag a moment behind) is waited out; one that lasts is the answer (502).
   */
  const waitForSync = async (namespace: string, name: string, generation: number): Promise<boolean> => {
    const deadline = Date.now() + (options.syncWaitMs ?? 5000);
    let failure: { reason: string; message: string } | undefined;
    while (Date.now() < deadline) {
      const parsed = StreamACLSchema.safeParse(await client.get(STREAM_ACL_TYPE, namespace, name));
      const condition = parsed.success
        ? parsed.data.status?.conditions?.find((c) => c.type === 'Synced')
        : undefined;
      const current = (condition?.observedGeneration ?? 0) >= generation;
      if (current && condition?.status === 'True') return true;
      failure = current && condition?.status === 'False' ? condition : undefined;
      await sleep(50);
    }
    if (failure)
      throw new RtccdnError(
        'UPSTREAM_FAILED',
        `written, but not synced to the edges: ${failure.reason}: ${failure.message}`,
        {
          data: { reason: failure.reason },
        },
      );
    return false;
  };

  // Every route in this scope requires ADMIN_TOKEN. The hook belongs to the routes, not to a URL
  // prefix, so it runs whatever form of the URL the router matched (%-encoded, absolute-form,
  // HEAD for GET).
  await app.register(async (api) => {
    api.addHook('onRequest', async (request) => tokens.check(request.headers.authorization, request.ip));

    api.get<{ Params: { stream: string } }>(BASE, async (request) => {
      const pattern = aclPatternParam(request);
      const { namespace, cdn } = await cdnOf(request);
      const { managed, other } = await find(namespace, cdn, pattern);
      const acl = managed ?? other;
      if (!acl) throw new RtccdnError('ACL_NOT_FOUND', `no ACL for ${pattern}`);
      return {
        stream: pattern,
        keys: acl.spec.keys.map((key) => ({
          id: key.id,
          ...(key.expiresAt ? { expiresAt: new Date(key.expiresAt).toISOString() } : {}),
        })),
        updatedAt: acl.status?.lastSyncTime ?? acl.metadata.creationTimestamp ?? new Date().toISOString(),
      };
    });

    api.put<{ Params: { stream: string } }>(BASE, async (request, reply) => {
      const pattern = aclPatternParam(request);
      const keys = keysOf(request);
      const { namespace, cdn } = await cdnOf(request);
      const { managed, other } = await find(namespace, cdn, pattern);
      refuseForeign(other, pattern);
      const { status, view } = await write({ namespace, cdn, pattern, keys }, managed?.metadata.uid);
      return reply.code(status).send(view);
    });

    api.post<{ Params: { stream: string } }>(`${BASE}/keys`, async (request, reply) => {
      const pattern = aclPatternParam(request);
      const added = keysOf(request);
      const { namespace, cdn } = await cdnOf(request);
      const { managed, other } = await find(namespace, cdn, pattern);
      refuseForeign(other, pattern);
      const existing = managed ? await currentKeys(namespace, managed) : [];
      const taken = added.find((key) => existing.some((current) => current.id === key.id));
      if (taken) throw new RtccdnError('KEY_ID_TAKEN', `key id "${taken.id}" already exists on ${pattern}`);
      const { status, view } = await write(
        { namespace, cdn, pattern, keys: [...existing, ...added] },
        managed?.metadata.uid,
      );
      return reply.code(status === 200 ? 201 : 202).send(view);
    });

    api.delete<{ Params: { stream: string; id: string } }>(`${BASE}/keys/:id`, async (request, reply) => {
      const pattern = aclPatternParam(request);
      const { namespace, cdn } = await cdnOf(request);
      const { managed, other } = await find(namespace, cdn, pattern);
      refuseForeign(other, pattern);
      const existing = managed ? await currentKeys(namespace, managed) : [];
      if (!existing.some((key) => key.id === request.params.id)) {
        throw new RtccdnError('KEY_NOT_FOUND', `no key "${request.params.id}" on ${pattern}`);
      }
      const remaining = existing.filter((key) => key.id !== request.params.id);
      if (remaining.length === 0) {
        // A StreamACL needs at least one key: no keys left means the ACL itself goes.
        throw new RtccdnError(
          'ACL_CONFLICT',
          `"${request.params.id}" is the last key of ${pattern}: DELETE the ACL instead`,
        );
      }
      const { status, view } = await write(
        { namespace, cdn, pattern, keys: remaining },
        managed?.metadata.uid,
      );
      return reply.code(status).send(view);
    });

    api.delete<{ Params: { stream: string } }>(BASE, async (request, reply) => {
      const pattern = aclPatternParam(request);
      const { namespace, cdn } = await cdnOf(request);
      const { managed, other } = await find(namespace, cdn, pattern);
      refuseForeign(other, pattern);
      if (!managed) throw new RtccdnError('ACL_NOT_FOUND', `no ACL for ${pattern}`);
      const name = managed.metadata.name ?? '';
      await client.delete(STREAM_ACL_TYPE, namespace, name);
      // The Secret is owned by the StreamACL (garbage collected); deleting it now does not wait for that.
      await client.delete(SECRET_TYPE, namespace, keysSecretName(name));
      return reply.code(204).send();
    });
  });

  app.get('/api/v1/openapi.json', async () => openApiDocument());
  return app;
}

function viewOf(pattern: string, keys: readonly AccessKeyInput[]): AclView {
  return {
    stream: pattern,
    keys: keys.map((key) => ({
      id: key.id,
      ...(key.expiresAt ? { expiresAt: new Date(key.expiresAt).toISOString() } : {}),
    })),
    updatedAt: new Date().toISOString(),
  };
}

/**
 * `?cdn=` / ACL_API_DEFAULT_CDN: `namespace/name` or `name` (in `defaultNamespace`), each a DNS
 * label; 400 otherwise.
 */
export function parseCdnRef(
  ref: string,
  defaultNamespace: string | undefined,
): { namespace: string; cdn: string } {
  const parts = ref.split('/');
  const [namespace, cdn] = parts.length === 1 ? [defaultNamespace ?? 'default', parts[0]!] : parts;
  if (parts.length > 2 || !isDnsLabel(namespace ?? '') || !isDnsLabel(cdn ?? '')) {
    throw new RtccdnError(
      'INVALID_REQUEST',
      `cdn must be <namespace>/<name> or <name>, each a DNS label (got ${JSON.stringify(ref.slice(0, 300))})`,
    );
  }
  return { namespace: namespace!, cdn: cdn! };
}
