import { createServer } from 'node:net';

/** A TCP port that was free a moment ago on 127.0.0.1 (the kernel picks it). */
export async function freeTcpPort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', resolve);
  });
  const address = server.address();
  await new Promise((resolve) => server.close(resolve));
  if (typeof address !== 'object' || !address) throw new Error('no port from the kernel');
  return address.port;
}

let nextBlock = 30_000 + Math.floor(Math.random() * 300) * 50;

/**
 * A block of `size` consecutive ports for UDP+TCP media (RTC and pipe ports), distinct within
 * this test process; random start so parallel runs rarely collide.
 */
export function portBlock(size: number): number {
  const start = nextBlock;
  nextBlock += Math.ceil(size / 50) * 50;
  if (nextBlock > 60_000) nextBlock = 30_000;
  return start;
}
