/** The error model of every rtccdn API: stable codes, their status, one answer shape (docs/errors.md). */
export * from './src/errors.js';
export * from './src/http/errorHandler.js';
