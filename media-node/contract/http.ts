/** HTTP conventions of every rtccdn server: bearer tokens, client addresses, error answers. */
export * from './src/http/auth.js';
export * from './src/http/clientAddress.js';
export * from './src/http/errorHandler.js';
