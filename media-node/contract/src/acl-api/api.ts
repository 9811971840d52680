import type { FastifyRequest } from 'fastify';
import { z } from 'zod';
import {
  type AccessKeyInput,
  AccessKeyInputSchema,
  AccessKeyListSchema,
  AclPatternSchema,
  KeyIdSchema,
} from '../acl/model.js';
import { RtccdnError } from '../errors.js';

/**
 * The ACL REST API (origins and standalone nodes), for a backend that says "stream X may be
 * watched with keys K1, K2". Authenticated by ADMIN_TOKEN. Responses never contain key values.
 *
 *   PUT    /api/v1/streams/{stream}/acl            replace the keys   {keys: [{id, key, expiresAt?}]}
 *   POST   /api/v1/streams/{stream}/acl/keys       add keys           {keys: [...]}
 *   DELETE /api/v1/streams/{stream}/acl/keys/{id}  remove one key
 *   GET    /api/v1/streams/{stream}/acl            ids and expiry
 *   DELETE /api/v1/streams/{stream}/acl            drop the ACL (stream follows the default policy)
 *
 * {stream} is a stream name or a prefix pattern such as `sales-*` (URL-encoded `*` is fine).
 */
export const KeysBodySchema = z.object({ keys: AccessKeyListSchema }).strict();

/** The routes' base (fastify syntax): the same on a media node and on the operator. */
export const ACL_ROUTE = '/api/v1/streams/:stream/acl';

/** The `{stream}` route parameter as an ACL pattern; 400 with the reason otherwise. */
export function aclPatternParam(request: FastifyRequest<{ Params: { stream: string } }>): string {
  const parsed = AclPatternSchema.safeParse(request.params.stream);
  if (!parsed.success) throw new RtccdnError('INVALID_REQUEST', parsed.error.issues[0]!.message);
  return parsed.data;
}

/** The `{keys: [...]}` JSON body; 415 for another media type, 400 naming the bad field. */
export function aclKeysBody(request: FastifyRequest): AccessKeyInput[] {
  const mediaType = request.headers['content-type']?.split(';')[0]?.trim().toLowerCase();
  if (mediaType !== 'application/json') {
    throw new RtccdnError('UNSUPPORTED_MEDIA_TYPE', 'body must be JSON (Content-Type: application/json)');
  }
  let json: unknown;
  try {
    json = JSON.parse(typeof request.body === 'string' ? request.body : '');
  } catch {
    throw new RtccdnError('INVALID_REQUEST', 'body is not valid JSON');
  }
  const parsed = KeysBodySchema.safeParse(json);
  if (!parsed.success) {
    const issue = parsed.error.issues[0]!;
    throw new RtccdnError(
      'INVALID_REQUEST',
      `invalid body: ${issue.path.join('.') || '(root)'}: ${issue.message}`,
    );
  }
  return parsed.data.keys;
}

/** OpenAPI 3.1 description of the ACL API; bodies come from the same zod schemas that validate them. */
export function openApiDocument(): Record<string, unknown> {
  const json = (schema: z.ZodType) => z.toJSONSchema(schema, { io: 'input', target: 'openapi-3.0' });
  const aclView = {
    type: 'object',
    required: ['stream', 'keys', 'updatedAt'],
    properties: {
      stream: { type: 'string' },
      keys: {
        type: 'array',
        items: {
          type: 'object',
          required: ['id'],
          properties: { id: { type: 'string' }, expiresAt: { type: 'string', format: 'date-time' } },
        },
      },
      updatedAt: { type: 'string', format: 'date-time' },
    },
  };
  const error = {
    type: 'object',
    properties: { statusCode: { type: 'integer' }, error: { type: 'string' }, message: { type: 'string' } },
  };
  const responses = (ok: Record<string, unknown>) => ({
    ...ok,
    '400': {
      description: 'Invalid stream pattern or body',
      content: { 'application/json': { schema: error } },
    },
    '401': {
      description: 'Missing or wrong ADMIN_TOKEN',
      content: { 'application/json': { schema: error } },
    },
    '503': {
      description: 'The ACL store (Redis) is unreachable',
      content: { 'application/json': { schema: error } },
    },
  });
  const streamParam = {
    name: 'stream',
    in: 'path',
    required: true,
    description: 'A stream name, or a prefix pattern ending in * (sales-*)',
    schema: json(AclPatternSchema),
  };
  const keysBody = { required: true, content: { 'application/json': { schema: json(KeysBodySchema) } } };
  const ok = (description: string) => ({ description, content: { 'application/json': { schema: aclView } } });
  return {
    openapi: '3.1.0',
    info: { title: 'rtccdn stream access control', version: '1' },
    components: {
      securitySchemes: { adminToken: { type: 'http', scheme: 'bearer' } },
      schemas: { AccessKey: json(AccessKeyInputSchema), Acl: aclView, Error: error },
    },
    security: [{ adminToken: [] }],
    paths: {
      '/api/v1/streams/{stream}/acl': {
        parameters: [streamParam],
        get: {
          summary: 'Key ids and expiry of an ACL',
          responses: responses({ '200': ok('The ACL'), '404': { description: 'No ACL' } }),
        },
        put: {
          summary: 'Replace the keys',
          requestBody: keysBody,
          responses: responses({ '200': ok('The new ACL') }),
        },
        delete: {
          summary: 'Drop the ACL: the stream follows the default policy',
          responses: responses({ '204': { description: 'Deleted' }, '404': { description: 'No ACL' } }),
        },
      },
      '/api/v1/streams/{stream}/acl/keys': {
        parameters: [streamParam],
        post: {
          summary: 'Add keys (ids must be new)',
          requestBody: keysBody,
          responses: responses({
            '201': ok('The ACL with the keys added'),
            '409': { description: 'Key id exists' },
          }),
        },
      },
      '/api/v1/streams/{stream}/acl/keys/{id}': {
        parameters: [streamParam, { name: 'id', in: 'path', required: true, schema: json(KeyIdSchema) }],
        delete: {
          summary: 'Remove one key: its viewers are cut off on every edge',
          responses: responses({
            '200': ok('The ACL without the key'),
            '404': { description: 'No such key' },
          }),
        },
      },
    },
  };
}
