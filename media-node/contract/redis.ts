/** The Redis layout of an rtccdn cluster (docs/redis-layout.md): key names, record schemas, scripts. */

export * from './src/redis/connection.js';
export * from './src/redis/keys.js';
export * from './src/redis/RedisScript.js';
