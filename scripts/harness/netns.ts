/**
 * A network namespace joined to this one by a veth pair, for tests that cut one node's network:
 * the node runs inside (`exec` prefix, address `nsIp`), everything else outside reaches it over
 * the pair (`hostIp` on this side). `cut()` brings the link down, `restore()` up again. Needs
 * root and iproute2 (`available()`); only namespace and loopback traffic is involved.
 */
import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { promisify } from 'node:util';

const run = promisify(execFile);
const IP = ['/usr/sbin/ip', '/sbin/ip', '/usr/bin/ip'].find((path) => existsSync(path));
const TC = ['/usr/sbin/tc', '/sbin/tc', '/usr/bin/tc'].find((path) => existsSync(path));

export interface NetnsLink {
  readonly name: string;
  /** This side's address on the pair (other nodes, Redis, the test's peers bind it). */
  readonly hostIp: string;
  /** The namespace's address (the node inside binds it). */
  readonly nsIp: string;
  /** Command prefix running a program inside the namespace. */
  readonly exec: string[];
  cut(): Promise<void>;
  /**
   * Limits what leaves the namespace (towards this side) to `rate` (tc's syntax, e.g. `400kbit`)
   * with a token bucket (tbf) and a short queue, as a constrained access link does; undefined
   * lifts the limit.
   */
  shape(rate: string | undefined): Promise<void>;
  restore(): Promise<void>;
  remove(): Promise<void>;
}

export function netnsAvailable(): boolean {
  return IP !== undefined && process.getuid?.() === 0;
}

async function ip(...args: string[]): Promise<string> {
  const { stdout } = await run(IP!, args);
  return stdout;
}

/** Creates the namespace and the pair on a /30 of 10.231.0.0/16 that no interface uses yet. */
export async function createNetns(): Promise<NetnsLink> {
  if (!netnsAvailable()) throw new Error('network namespaces need root and iproute2');
  const tag = `${process.pid % 10_000}${Math.floor(Math.random() * 100)}`;
  const name = `rtccdn-f${tag}`;
  const hostVeth = `rtf${tag}h`;
  const nsVeth = `rtf${tag}n`;
  const used = await ip('-4', 'addr');
  let subnet = 0;
  for (let attempt = 0; attempt < 50; attempt++) {
    const candidate = 4 * Math.floor(Math.random() * 16_000);
    if (!used.includes(`10.231.${candidate >> 8}.${(candidate & 255) + 1}/`)) {
      subnet = candidate;
      break;
    }
  }
  const address = (offset: number) => `10.231.${subnet >> 8}.${(subnet & 255) + offset}`;
  const [hostIp, nsIp] = [address(1), address(2)];
  await ip('netns', 'add', name);
  const link: NetnsLink = {
    name,
    hostIp,
    nsIp,
    exec: [IP!, 'netns', 'exec', name],
    cut: async () => void (await ip('link', 'set', hostVeth, 'down')),
    restore: async () => void (await ip('link', 'set', hostVeth, 'up')),
    shape: async (rate) => {
      if (!TC) throw new Error('shaping a link needs tc (iproute2)');
      const tc = (...args: string[]) => run(IP!, ['netns', 'exec', name, TC, ...args]);
      if (rate === undefined) await tc('qdisc', 'del', 'dev', nsVeth, 'root').catch(() => undefined);
      else
        await tc(
          'qdisc',
          'replace',
          'dev',
          nsVeth,
          'root',
          'tbf',
          'rate',
          rate,
          'burst',
          '16kbit',
          'latency',
          '150ms',
        );
    },
    remove: async () => {
      // Deleting the namespace deletes the pair too.
      await ip('netns', 'del', name).catch(() => undefined);
      await ip('link', 'del', hostVeth).catch(() => undefined);
    },
  };
  try {
    await ip('link', 'add', hostVeth, 'type', 'veth', 'peer', 'name', nsVeth);
    await ip('link', 'set', nsVeth, 'netns', name);
    await ip('addr', 'add', `${hostIp}/30`, 'dev', hostVeth);
    await ip('link', 'set', hostVeth, 'up');
    await ip('netns', 'exec', name, IP!, 'addr', 'add', `${nsIp}/30`, 'dev', nsVeth);
    await ip('netns', 'exec', name, IP!, 'link', 'set', nsVeth, 'up');
    await ip('netns', 'exec', name, IP!, 'link', 'set', 'lo', 'up');
  } catch (error) {
    await link.remove();
    throw error;
  }
  return link;
}
