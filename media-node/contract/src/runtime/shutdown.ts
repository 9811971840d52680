import type { Logger } from './logger.js';

/**
 * On the first SIGTERM/SIGINT runs `close` and exits 0; exits 1 if closing takes longer than
 * `timeoutMs` (SIGTERM must not hang a rollout). Shared by the media node and the operator.
 */
export function exitOnShutdownSignals(logger: Logger, timeoutMs: number, close: () => Promise<void>): void {
  let stopping = false;
  const shutdown = async (signal: string): Promise<void> => {
    if (stopping) return;
    stopping = true;
    logger.info({ signal }, 'shutting down');
    const deadline = setTimeout(() => {
      logger.error('shutdown timed out; exiting');
      process.exit(1);
    }, timeoutMs);
    deadline.unref();
    await close();
    logger.info('stopped');
    process.exit(0);
  };
  process.on('SIGTERM', () => void shutdown('SIGTERM'));
  process.on('SIGINT', () => void shutdown('SIGINT'));
}
