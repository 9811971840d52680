/**
 * The ACL REST API both a media node and the operator serve: routes, bodies, the OpenAPI
 * document, and its ADMIN_TOKEN authentication.
 */
export { KeyIdSchema } from './src/acl/model.js';
export * from './src/acl-api/api.js';
export { RtccdnError } from './src/errors.js';
export * from './src/http/auth.js';
