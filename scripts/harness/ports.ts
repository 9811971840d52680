import { readFileSync } from 'node:fs';
import { createServer, type Server } from 'node:net';

/** Distinct TCP ports that were free a moment ago on 127.0.0.1, all held open together while choosing. */
export async function freeTcpPorts(count: number): Promise<number[]> {
  const servers: Server[] = [];
  try {
    for (let i = 0; i < count; i++) {
      const server = createServer();
      servers.push(server);
      await new Promise<void>((resolve, reject) => {
        server.once('error', reject);
        server.listen(0, '127.0.0.1', () => resolve());
      });
    }
    return servers.map((server) => {
      const address = server.address();
      if (!address || typeof address === 'string') throw new Error('no port assigned');
      return address.port;
    });
  } finally {
    await Promise.all(servers.map((server) => new Promise((resolve) => server.close(resolve))));
  }
}

/** A TCP port that was free a moment ago on 127.0.0.1 (the kernel picks it). */
export async function freeTcpPort(): Promise<number> {
  const [port] = await freeTcpPorts(1);
  return port!;
}

/**
 * Explicitly bound test ports (RTC, pipes) stay below the kernel's ephemeral range: a port the
 * kernel handed to some outgoing connection a moment ago must not be the one a node binds.
 */
const [EPHEMERAL_LOW] = ((): [number] => {
  try {
    return [Number(readFileSync('/proc/sys/net/ipv4/ip_local_port_range', 'utf8').trim().split(/\s+/)[0])];
  } catch {
    return [32768];
  }
})();
const BLOCKS_FROM = 20_000;
const BLOCKS_TO = Math.max(BLOCKS_FROM + 2_000, EPHEMERAL_LOW - 100);
let nextBlock = BLOCKS_FROM + Math.floor(Math.random() * ((BLOCKS_TO - BLOCKS_FROM) / 50 - 40)) * 50;

/**
 * A block of `size` consecutive ports for UDP+TCP media (RTC and pipe ports), distinct within
 * this test process; random start so parallel runs rarely collide.
 */
export function portBlock(size: number): number {
  const blocks = Math.ceil(size / 50) * 50;
  if (nextBlock + blocks > BLOCKS_TO) nextBlock = BLOCKS_FROM;
  const start = nextBlock;
  nextBlock += blocks;
  return start;
}
