/**
 * What both programs do alike as processes (the container contract): configuration from the
 * environment with one-line errors, JSON logs, SIGTERM handling; and their small building blocks.
 */
export * from './src/runtime/backoff.js';
export * from './src/runtime/environment.js';
export * from './src/runtime/logger.js';
export * from './src/runtime/shutdown.js';
export * from './src/runtime/TypedEmitter.js';
export * from './src/runtime/WindowLimiter.js';
