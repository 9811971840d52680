/** The node-to-node API: paths and bodies, request/answer signing, key sealing, and its client. */
export * from './src/internal-api/hmac.js';
export * from './src/internal-api/InternalClient.js';
export * from './src/internal-api/KeySealer.js';
export * from './src/internal-api/protocol.js';
