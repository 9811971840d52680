import type { FastifyInstance, FastifyReply } from 'fastify';
import {
  aclKeysBody,
  aclPatternParam,
  ACL_ROUTE as BASE,
  KeyIdSchema,
  openApiDocument,
  RtccdnError,
  TokenGuard,
} from '../../contract/acl-api.js';
import type { MediaNode } from '../MediaNode.js';

/**
 * The ACL REST API of origins and standalone nodes (routes, bodies and answers: the contract's
 * acl-api), writing the node's ACL store (Redis in a CDN, memory standalone).
 */
/**
 * Registers the ACL routes. Authentication is a hook of the routes' own scope, so it runs for
 * whatever form of the URL the router matched (%-encoded, absolute-form, HEAD for GET).
 */
export async function registerAclRoutes(app: FastifyInstance, node: MediaNode): Promise<void> {
  const token = node.config.adminToken;
  const access = node.config.access;
  const tokens =
    token === undefined
      ? undefined
      : new TokenGuard({
          token,
          realm: 'rtccdn-admin',
          failuresPerClient: access.failuresPerClientIp,
          windowMs: access.failureWindowMs,
        });
  app.addHook('onClose', async () => tokens?.close());

  await app.register(async (api) => {
    api.addHook('onRequest', async (request) => {
      if (node.config.aclApi === 'kubernetes') {
        throw new RtccdnError(
          'WRONG_NODE',
          "ACLs of this CDN are StreamACL resources: use the operator's ACL API (same routes) or kubectl",
        );
      }
      if (tokens) tokens.check(request.headers.authorization, request.ip);
      // Without ADMIN_TOKEN only a standalone node without Redis serves the API (config refuses
      // the rest): its ACLs live in this process alone.
      else if (node.config.role !== 'all' || node.config.cluster) {
        throw new RtccdnError('API_DISABLED', 'the ACL API is disabled on this node: set ADMIN_TOKEN');
      }
    });
    registerAclHandlers(api, node);
  });

  app.get('/api/v1/openapi.json', async () => openApiDocument());
}

function registerAclHandlers(app: FastifyInstance, node: MediaNode): void {
  const access = node.access;

  app.get<{ Params: { stream: string } }>(BASE, async (request) => {
    const acl = await access.get(aclPatternParam(request));
    if (!acl) throw new RtccdnError('ACL_NOT_FOUND', `no ACL for ${request.params.stream}`);
    return acl;
  });

  app.put<{ Params: { stream: string } }>(BASE, async (request) => {
    const target = aclPatternParam(request);
    const acl = await access.replaceKeys(target, aclKeysBody(request));
    request.log.info({ stream: target, keyIds: acl.keys.map((key) => key.id) }, 'ACL replaced');
    return acl;
  });

  app.delete<{ Params: { stream: string } }>(BASE, async (request, reply: FastifyReply) => {
    const target = aclPatternParam(request);
    if (!(await access.delete(target)))
      throw new RtccdnError('ACL_NOT_FOUND', `no ACL for ${request.params.stream}`);
    request.log.info({ stream: target }, 'ACL deleted');
    return reply.code(204).send();
  });

  app.post<{ Params: { stream: string } }>(`${BASE}/keys`, async (request, reply: FastifyReply) => {
    const target = aclPatternParam(request);
    const keys = aclKeysBody(request);
    const acl = await access.addKeys(target, keys);
    request.log.info({ stream: target, keyIds: keys.map((key) => key.id) }, 'ACL keys added');
    return reply.code(201).send(acl);
  });

  app.delete<{ Params: { stream: string; id: string } }>(`${BASE}/keys/:id`, async (request) => {
    const target = aclPatternParam(request);
    const id = KeyIdSchema.safeParse(request.params.id);
    if (!id.success) throw new RtccdnError('INVALID_REQUEST', id.error.issues[0]!.message);
    const acl = await access.removeKey(target, id.data);
    request.log.info({ stream: target, keyId: id.data }, 'ACL key removed');
    return acl;
  });
}
