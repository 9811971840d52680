import { type ChildProcess, spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { type AddressInfo, connect, createServer, type Socket } from 'node:net';
import { fileURLToPath } from 'node:url';
import { afterAll, afterEach, beforeAll, describe, expect, it } from '@jest/globals';
import fc from 'fast-check';
import { Redis } from 'ioredis';
import { pino } from 'pino';
import { ClusterKeys, LAYOUT_VERSION } from '../../media-node/contract/redis.js';
import {
  type ClusterNodeIdentity,
  ClusterRegistry,
  ClusterRegistryError,
  type ClusterRegistryEvents,
} from '../../media-node/src/cluster/ClusterRegistry.js';
import { createLogger, type Logger } from '../../media-node/src/logger.js';
import { settlesWithin } from '../../scripts/harness/node.js';
import {
  type RedisServer,
  startRedisServer,
  startSubscribeHoldingProxy,
} from '../../scripts/harness/redis.js';

// Short enough for a quick suite; assertions leave generous slack (2 shared cores).
const HEARTBEAT_MS = 200;
const TTL_MS = 800;

const REGISTRY_MODULE = fileURLToPath(
  new URL('../../media-node/src/cluster/ClusterRegistry.ts', import.meta.url),
);
const LOGGER_MODULE = fileURLToPath(new URL('../../media-node/src/logger.ts', import.meta.url));
const SETPRIV = ['/usr/bin/setpriv', '/bin/setpriv'].find((path) => existsSync(path));

const silent = createLogger('silent');
let prefixes = 0;
/** Each test works under its own prefix: registries of different tests never see each other. */
const freshPrefix = (): string => `test${process.pid}-${++prefixes}:`;

const opened: ClusterRegistry[] = [];
const children: ChildProcess[] = [];

afterEach(async () => {
  for (const child of children.splice(0)) child.kill('SIGKILL');
  await Promise.all(opened.splice(0).map((registry) => registry.close()));
});

/** A distinct internal URL per node id (internal URLs are http://IP:port, nothing more). */
function urlFor(id: string): string {
  const port = 20_000 + ([...id].reduce((sum, char) => sum * 31 + char.charCodeAt(0), 7) % 20_000);
  return `http://10.0.0.1:${port}`;
}

function identity(id: string, overrides: Partial<ClusterNodeIdentity> = {}): ClusterNodeIdentity {
  return { id, role: 'origin', region: 'eu-west-1', internalUrl: urlFor(id), ...overrides };
}

function openRegistry(
  server: Pick<RedisServer, 'url'>,
  prefix: string,
  self: ClusterNodeIdentity,
  logger: Logger = silent,
): ClusterRegistry {
  const registry = ClusterRegistry.create({
    redisUrl: server.url,
    prefix,
    self,
    heartbeatMs: HEARTBEAT_MS,
    ttlMs: TTL_MS,
    logger,
  });
  opened.push(registry);
  return registry;
}

async function openReady(
  server: Pick<RedisServer, 'url'>,
  prefix: string,
  self: ClusterNodeIdentity,
  logger?: Logger,
): Promise<ClusterRegistry> {
  const registry = openRegistry(server, prefix, self, logger);
  await ready(registry);
  return registry;
}

function ready(registry: ClusterRegistry): Promise<unknown> {
  return registry.ready ? Promise.resolve() : nextEvent(registry, 'ready');
}

/** The next `event` of `registry` (matching `accept`), or a rejection after `timeoutMs`. */
function nextEvent<K extends keyof ClusterRegistryEvents & string>(
  registry: ClusterRegistry,
  event: K,
  accept: (...args: ClusterRegistryEvents[K]) => boolean = () => true,
  timeoutMs = 5_000,
): Promise<ClusterRegistryEvents[K]> {
  return new Promise((resolve, reject) => {
    const listener = (...args: ClusterRegistryEvents[K]): void => {
      if (!accept(...args)) return;
      clearTimeout(timer);
      registry.off(event, listener);
      resolve(args);
    };
    const timer = setTimeout(() => {
      registry.off(event, listener);
      reject(new Error(`no "${event}" event within ${timeoutMs} ms`));
    }, timeoutMs);
    registry.on(event, listener);
  });
}

/** Polls `condition` until it holds; resolves with the time it took. */
async function eventually(condition: () => Promise<boolean>, timeoutMs = 5_000): Promise<number> {
  const start = Date.now();
  for (;;) {
    if (await condition()) return Date.now() - start;
    if (Date.now() - start > timeoutMs) throw new Error(`condition not met within ${timeoutMs} ms`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

/** A pino logger whose warnings the test can read. */
function capturingLogger(): { logger: Logger; warnings: () => string[] } {
  const lines: string[] = [];
  const logger = pino({ level: 'warn' }, { write: (line: string) => void lines.push(line) });
  return {
    logger,
    warnings: () => lines.map((line) => (JSON.parse(line) as { msg: string }).msg),
  };
}

/**
 * A registry in its own process (a node that can really die): registers, optionally claims a
 * stream, then says "ready" on stdout and idles until it is killed.
 */
async function spawnRegistryProcess(
  server: RedisServer,
  prefix: string,
  self: ClusterNodeIdentity,
  stream?: string,
): Promise<ChildProcess> {
  const options = { redisUrl: server.url, prefix, self, heartbeatMs: HEARTBEAT_MS, ttlMs: TTL_MS };
  const code = `
    const { ClusterRegistry } = await import(${JSON.stringify(REGISTRY_MODULE)});
    const { createLogger } = await import(${JSON.stringify(LOGGER_MODULE)});
    const registry = ClusterRegistry.create({ ...${JSON.stringify(options)}, logger: createLogger('silent') });
    registry.once('ready', async () => {
      const stream = ${JSON.stringify(stream ?? null)};
      if (stream) {
        const result = await registry.claimStream({ name: stream, kinds: ['video'] });
        if (!result.claimed) throw new Error('child could not claim ' + stream);
      }
      process.stdout.write('ready\\n');
    });
    setInterval(() => {}, 60_000);
  `;
  const args = ['--import', 'tsx', '--input-type=module', '-e', code];
  // setpriv: the child dies with the test process, whatever happens to it.
  const [file, argv] = SETPRIV
    ? [SETPRIV, ['--pdeathsig', 'KILL', '--', process.execPath, ...args]]
    : [process.execPath, args];
  const child = spawn(file, argv, { stdio: ['ignore', 'pipe', 'inherit'] });
  children.push(child);
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error('registry process not ready within 20 s')), 20_000);
    child.once('exit', (code) => reject(new Error(`registry process exited with ${code}`)));
    child.stdout!.on('data', (chunk: Buffer) => {
      if (chunk.toString().includes('ready')) {
        clearTimeout(timer);
        resolve();
      }
    });
  });
  return child;
}

async function sigkill(child: ChildProcess): Promise<void> {
  const exited = new Promise((resolve) => child.once('exit', resolve));
  child.kill('SIGKILL');
  await exited;
}

/**
 * A TCP proxy to Redis that the test can cut (every connection dropped, new ones refused) and
 * heal: a network partition between one node and Redis while the others still reach it.
 */
async function startPartitionableProxy(
  redisPort: number,
): Promise<{ url: string; cut(): void; heal(): void; close(): Promise<void> }> {
  const sockets = new Set<Socket>();
  let partitioned = false;
  const track = (socket: Socket): void => {
    sockets.add(socket);
    socket.once('close', () => sockets.delete(socket));
    socket.on('error', () => socket.destroy());
  };
  const proxy = createServer((client) => {
    if (partitioned) {
      client.destroy();
      return;
    }
    const upstream = connect(redisPort, '127.0.0.1');
    track(client);
    track(upstream);
    client.once('close', () => upstream.destroy());
    upstream.once('close', () => client.destroy());
    client.pipe(upstream).pipe(client);
  });
  await new Promise<void>((resolve) => proxy.listen(0, '127.0.0.1', resolve));
  const { port } = proxy.address() as AddressInfo;
  return {
    url: `redis://127.0.0.1:${port}`,
    cut() {
      partitioned = true;
      for (const socket of sockets) socket.destroy();
    },
    heal() {
      partitioned = false;
    },
    async close() {
      for (const socket of sockets) socket.destroy();
      await new Promise((resolve) => proxy.close(resolve));
    },
  };
}

// --- key layout ---------------------------------------------------------------------------------

describe('ClusterKeys', () => {
  const streamName = fc.stringMatching(/^[A-Za-z0-9._~-]{1,128}$/);
  const region = fc.stringMatching(/^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$/);
  const nodeId = fc.stringMatching(/^[A-Za-z0-9._-]{1,128}$/);
  const prefix = fc.constantFrom('rtccdn:', '{rtccdn}:', 'prod:cdn:', 'x');

  it('round-trips every valid name, region and node id, and never collides across kinds', () => {
    fc.assert(
      fc.property(prefix, streamName, region, nodeId, (prefix, name, region, id) => {
        const keys = new ClusterKeys(prefix);
        expect(keys.parse(keys.stream(name))).toEqual({ kind: 'stream', name });
        expect(keys.parse(keys.relay(region, name))).toEqual({ kind: 'relay', region, name });
        expect(keys.parse(keys.node(id))).toEqual({ kind: 'node', nodeId: id });
        expect(keys.parse(keys.nodes)).toEqual({ kind: 'nodes' });
        expect(keys.parse(keys.streams)).toEqual({ kind: 'streams' });
        // A stream, a node and a region may all share one spelling: their keys must still differ.
        const all = [
          keys.stream(name),
          keys.relay(region, name),
          keys.node(id),
          // (a node named like the stream, unless that is `id` itself: then it is the same node)
          ...(name.replace(/~/g, '-') === id ? [] : [keys.node(name.replace(/~/g, '-'))]),
          keys.nodes,
          keys.streams,
          keys.events,
        ];
        expect(new Set(all).size).toBe(all.length);
        for (const key of all) expect(key.startsWith(keys.aclNamespace)).toBe(false);
      }),
    );
  });

  it('maps distinct components to distinct keys (injective)', () => {
    fc.assert(
      fc.property(streamName, streamName, region, region, (a, b, r1, r2) => {
        const keys = new ClusterKeys();
        expect(keys.stream(a) === keys.stream(b)).toBe(a === b);
        expect(keys.relay(r1, a) === keys.relay(r2, b)).toBe(r1 === r2 && a === b);
      }),
    );
  });

  it('rejects components that would make keys ambiguous, and ignores foreign keys', () => {
    const keys = new ClusterKeys();
    expect(() => keys.stream('a:b')).toThrow(/invalid stream name "a:b"/);
    expect(() => keys.stream('')).toThrow(TypeError);
    expect(() => keys.stream('x'.repeat(129))).toThrow(TypeError);
    expect(() => keys.relay('eu:west', 'cam')).toThrow(/invalid region/);
    expect(() => keys.node('pod 1')).toThrow(/invalid node id/);
    expect(() => new ClusterKeys('bad prefix')).toThrow(/invalid key prefix/);
    expect(keys.parse('other:stream:cam')).toBeUndefined();
    expect(keys.parse('rtccdn:stream:a:b')).toBeUndefined();
    expect(keys.parse('rtccdn:relay:eu:a:b')).toBeUndefined();
    expect(keys.parse('rtccdn:acl:anything')).toEqual({ kind: 'acl', rest: 'anything' });
  });
});

// --- registry on a real redis-server --------------------------------------------------------------

describe('ClusterRegistry', () => {
  let server: RedisServer;
  /** A plain client for looking at (and tampering with) what the registries wrote. */
  let admin: Redis;

  beforeAll(async () => {
    server = await startRedisServer();
    admin = new Redis(server.url);
  });

  afterAll(async () => {
    admin?.disconnect();
    await server?.stop();
  });

  it('rejects invalid options at once, and does not throw when Redis is unreachable', async () => {
    const options = { redisUrl: server.url, self: identity('a'), logger: silent };
    expect(() => ClusterRegistry.create({ ...options, ttlMs: 300, heartbeatMs: 200 })).toThrow(
      /ttlMs must be at least twice heartbeatMs/,
    );
    expect(() => ClusterRegistry.create({ ...options, self: identity('a', { region: 'EU' }) })).toThrow(
      /region must be a DNS label/,
    );
    expect(() => ClusterRegistry.create({ ...options, redisUrl: 'http://x' })).toThrow(/redisUrl/);
    // Nothing listens on port 1: create() returns, then reports the failure as an event.
    const registry = ClusterRegistry.create({ ...options, redisUrl: 'redis://127.0.0.1:1' });
    opened.push(registry);
    const [error] = await nextEvent(registry, 'unavailable');
    expect(error).toBeInstanceOf(ClusterRegistryError);
    expect(error.message).toMatch(/^cluster registry: connection to 127\.0\.0\.1:1 failed: .*ECONNREFUSED/);
    expect(registry.ready).toBe(false);
  });

  it('registers nodes and lists them, filtered by role and region', async () => {
    const prefix = freshPrefix();
    const origin = await openReady(
      server,
      prefix,
      identity('origin-1', { role: 'origin', region: 'eu-west-1' }),
    );
    await openReady(server, prefix, identity('edge-eu', { role: 'edge', region: 'eu-west-1' }));
    await openReady(server, prefix, identity('edge-us', { role: 'edge', region: 'us-east-1' }));
    await openReady(server, prefix, identity('standalone', { role: 'all', region: 'us-east-1' }));
    const ids = async (filter?: Parameters<ClusterRegistry['listNodes']>[0]): Promise<string[]> =>
      (await origin.listNodes(filter)).map((node) => node.id);

    expect(await ids()).toEqual(['edge-eu', 'edge-us', 'origin-1', 'standalone']);
    expect(await ids({ role: 'edge' })).toEqual(['edge-eu', 'edge-us']);
    expect(await ids({ role: ['edge', 'all'] })).toEqual(['edge-eu', 'edge-us', 'standalone']);
    expect(await ids({ region: 'eu-west-1' })).toEqual(['edge-eu', 'origin-1']);
    expect(await ids({ role: 'edge', region: 'us-east-1' })).toEqual(['edge-us']);

    // Load and draining are published by the next heartbeat.
    origin.setLoad({ viewers: 12, streams: 2, egressBps: 3_000_000, cpu: 0.25 });
    origin.setDraining(true);
    expect(await origin.heartbeatNow()).toBe(true);
    const [record] = await origin.listNodes({ role: 'origin' });
    expect(record).toMatchObject({
      v: LAYOUT_VERSION,
      id: 'origin-1',
      role: 'origin',
      region: 'eu-west-1',
      internalUrl: urlFor('origin-1'),
      load: { viewers: 12, streams: 2, egressBps: 3_000_000, cpu: 0.25 },
      draining: true,
    });
    expect(() => origin.setLoad({ viewers: -1, streams: 0, egressBps: 0, cpu: 2 })).toThrow(RangeError);

    // The record lives under the layout's key, with a TTL, and the index scores its expiry.
    const keys = new ClusterKeys(prefix);
    const ttl = await admin.pttl(keys.node('origin-1'));
    expect(ttl).toBeGreaterThan(0);
    expect(ttl).toBeLessThanOrEqual(TTL_MS);
    expect(Number(await admin.zscore(keys.nodes, 'origin-1'))).toBeGreaterThan(Date.now() - 1000);
  });

  it('drops a node that stops heartbeating once its record expires', async () => {
    const prefix = freshPrefix();
    const observer = await openReady(server, prefix, identity('observer'));
    const child = await spawnRegistryProcess(server, prefix, identity('doomed', { role: 'edge' }));
    expect((await observer.listNodes()).map((node) => node.id)).toContain('doomed');

    await sigkill(child);
    // Its record carries a TTL of TTL_MS (checked above); liveness bound here, not a speed target.
    await eventually(
      async () => !(await observer.listNodes()).some((node) => node.id === 'doomed'),
      3 * TTL_MS,
    );
    // Listing pruned it from the index, too.
    expect(await admin.zscore(new ClusterKeys(prefix).nodes, 'doomed')).toBeNull();
  });

  it('makes stream claims exclusive across origins and announces them to every node', async () => {
    const prefix = freshPrefix();
    const originA = await openReady(server, prefix, identity('origin-a'));
    const originB = await openReady(server, prefix, identity('origin-b', { region: 'us-east-1' }));
    const edge = await openReady(server, prefix, identity('edge', { role: 'edge' }));

    const up = nextEvent(edge, 'streamup', (message) => message.stream === 'show');
    const claimA = await originA.claimStream({ name: 'show', kinds: ['audio', 'video'] });
    if (!claimA.claimed) throw new Error('origin A should have claimed the stream');
    expect(await up).toEqual([
      { v: LAYOUT_VERSION, type: 'stream-up', stream: 'show', nodeId: 'origin-a', claimId: claimA.claimId },
    ]);

    const claimB = await originB.claimStream({ name: 'show', kinds: ['video'] });
    expect(claimB).toEqual({ claimed: false, holder: claimA.record });
    expect(await edge.lookupStream('show')).toEqual({
      v: LAYOUT_VERSION,
      name: 'show',
      nodeId: 'origin-a',
      region: 'eu-west-1',
      internalUrl: urlFor('origin-a'),
      claimId: claimA.claimId,
      startedAt: expect.any(Number),
      kinds: ['audio', 'video'],
    });
    expect(await edge.listStreams()).toEqual([claimA.record]);
    expect(await originB.releaseStream('show', 'unpublished')).toBe(false); // not B's to release

    const down = nextEvent(edge, 'streamdown', (message) => message.stream === 'show');
    expect(await originA.releaseStream('show', 'unpublished')).toBe(true);
    expect(await down).toEqual([
      {
        v: LAYOUT_VERSION,
        type: 'stream-down',
        stream: 'show',
        nodeId: 'origin-a',
        claimId: claimA.claimId,
        reason: 'unpublished',
      },
    ]);
    expect(await edge.lookupStream('show')).toBeUndefined();
    expect(await edge.listStreams()).toEqual([]);

    const claimAgain = await originB.claimStream({ name: 'show', kinds: ['video'] });
    expect(claimAgain).toMatchObject({ claimed: true, record: { nodeId: 'origin-b', region: 'us-east-1' } });

    // Racing claims: exactly one origin wins, the other learns who.
    const results = await Promise.all([
      originA.claimStream({ name: 'race', kinds: ['video'] }),
      originB.claimStream({ name: 'race', kinds: ['video'] }),
    ]);
    const winners = results.filter((result) => result.claimed);
    expect(winners).toHaveLength(1);
    const loser = results.find((result) => !result.claimed);
    expect(loser).toEqual({ claimed: false, holder: winners[0]!.claimed ? winners[0]!.record : undefined });
  });

  it('lets another origin claim a stream whose holder died, within the TTL', async () => {
    const prefix = freshPrefix();
    const survivor = await openReady(server, prefix, identity('survivor'));
    const child = await spawnRegistryProcess(server, prefix, identity('doomed'), 'phoenix');
    expect(await survivor.claimStream({ name: 'phoenix', kinds: ['video'] })).toMatchObject({
      claimed: false,
      holder: { nodeId: 'doomed' },
    });

    await sigkill(child);
    await eventually(
      async () => (await survivor.claimStream({ name: 'phoenix', kinds: ['video'] })).claimed,
      3 * TTL_MS,
    );
    expect(await survivor.lookupStream('phoenix')).toMatchObject({ nodeId: 'survivor' });
  });

  it('takes over only the named claim of a holder found dead, announcing which claim it replaces', async () => {
    const prefix = freshPrefix();
    const dead = await openReady(server, prefix, identity('dead'));
    const heir = await openReady(server, prefix, identity('heir'));
    const held = await dead.claimStream({ name: 'moving', kinds: ['video'] });
    if (!held.claimed) throw new Error('the first origin should have claimed the stream');

    // Another claim id than the holder's: refused, the holder is returned and stays.
    expect(
      await heir.claimStream({ name: 'moving', kinds: ['video'] }, { replaces: 'not-the-holder' }),
    ).toEqual({
      claimed: false,
      holder: held.record,
    });
    const up = nextEvent(heir, 'streamup');
    const taken = await heir.claimStream({ name: 'moving', kinds: ['video'] }, { replaces: held.claimId });
    expect(taken).toMatchObject({ claimed: true, record: { nodeId: 'heir', replaces: held.claimId } });
    expect(await up).toEqual([
      expect.objectContaining({
        type: 'stream-up',
        stream: 'moving',
        nodeId: 'heir',
        replaces: held.claimId,
      }),
    ]);
    expect(await heir.lookupStream('moving')).toMatchObject({ nodeId: 'heir', replaces: held.claimId });
    // The old holder (had it been alive after all) finds its claim lost and stops refreshing it.
    const lost = nextEvent(dead, 'leaselost');
    await dead.heartbeatNow();
    expect(await lost).toEqual([expect.objectContaining({ kind: 'stream', name: 'moving' })]);

    // Relay leases likewise.
    const edgeA = await openReady(server, prefix, identity('edge-a', { role: 'edge' }));
    const edgeB = await openReady(server, prefix, identity('edge-b', { role: 'edge' }));
    const lease = await edgeA.claimRelay('eu-west-1', 'moving');
    if (!lease.acquired) throw new Error('edge A should have the lease');
    expect(await edgeB.claimRelay('eu-west-1', 'moving', { replaces: 'other' })).toMatchObject({
      acquired: false,
    });
    expect(await edgeB.claimRelay('eu-west-1', 'moving', { replaces: lease.claimId })).toMatchObject({
      acquired: true,
      record: { nodeId: 'edge-b' },
    });
  });

  it('reports a stream claim taken over by another origin, and stops refreshing it', async () => {
    const prefix = freshPrefix();
    const keys = new ClusterKeys(prefix);
    const originA = await openReady(server, prefix, identity('origin-a'));
    const originB = await openReady(server, prefix, identity('origin-b'));
    const claimA = await originA.claimStream({ name: 'contested', kinds: ['video'] });
    expect(claimA.claimed).toBe(true);

    // As if A's claim expired while A could not reach Redis, and B took the name meanwhile.
    await admin.del(keys.stream('contested'));
    const claimB = await originB.claimStream({ name: 'contested', kinds: ['video'] });
    if (!claimB.claimed) throw new Error('origin B should have claimed the stream');

    const lost = nextEvent(originA, 'leaselost');
    expect(await originA.heartbeatNow()).toBe(true);
    expect(await lost).toEqual([{ kind: 'stream', name: 'contested', holder: claimB.record }]);

    // A forgets the claim: no second report, no refresh or release of B's claim.
    let reports = 0;
    originA.on('leaselost', () => reports++);
    await originA.heartbeatNow();
    expect(reports).toBe(0);
    expect(await originA.releaseStream('contested', 'unpublished')).toBe(false);
    expect(await originA.lookupStream('contested')).toEqual(claimB.record);
  });

  it('gives a regional relay lease to exactly one edge per region', async () => {
    const prefix = freshPrefix();
    const edge1 = await openReady(server, prefix, identity('edge-1', { role: 'edge', region: 'eu-west-1' }));
    const edge2 = await openReady(server, prefix, identity('edge-2', { role: 'edge', region: 'eu-west-1' }));
    const edge3 = await openReady(server, prefix, identity('edge-3', { role: 'edge', region: 'us-east-1' }));

    const [first, second] = await Promise.all([
      edge1.claimRelay('eu-west-1', 'show'),
      edge2.claimRelay('eu-west-1', 'show'),
    ]);
    const winner = first.acquired ? first : second;
    const loser = first.acquired ? second : first;
    if (!winner.acquired) throw new Error('one edge should have the lease');
    expect(loser).toEqual({ acquired: false, holder: winner.record });
    expect(await edge3.lookupRelay('eu-west-1', 'show')).toEqual(winner.record);

    // Another region, and another stream in the same region, do not conflict.
    expect(await edge3.claimRelay('us-east-1', 'show')).toMatchObject({ acquired: true });
    expect(await edge1.claimRelay('eu-west-1', 'other')).toMatchObject({ acquired: true });

    // Held leases survive heartbeats past their TTL; a release frees the lease for the other edge.
    await new Promise((resolve) => setTimeout(resolve, TTL_MS + 2 * HEARTBEAT_MS));
    expect(await edge3.lookupRelay('eu-west-1', 'show')).toEqual(winner.record);
    const [winnerRegistry, loserRegistry] = winner === first ? [edge1, edge2] : [edge2, edge1];
    await winnerRegistry.releaseRelay('eu-west-1', 'show');
    expect(await edge3.lookupRelay('eu-west-1', 'show')).toBeUndefined();
    expect(await loserRegistry.claimRelay('eu-west-1', 'show')).toMatchObject({ acquired: true });
  });

  it('skips corrupt records and invalid messages with a warning instead of failing', async () => {
    const prefix = freshPrefix();
    const keys = new ClusterKeys(prefix);
    const { logger, warnings } = capturingLogger();
    const reader = await openReady(server, prefix, identity('reader'), logger);
    const farFuture = Date.now() + 3_600_000;
    const validStream = {
      v: LAYOUT_VERSION,
      name: 'good',
      nodeId: 'n1',
      region: 'eu-west-1',
      internalUrl: 'http://10.0.0.2:8081',
      claimId: 'c1',
      startedAt: 1,
      kinds: ['video'],
    };
    await admin
      .multi()
      .set(keys.node('not-json'), '{oops')
      .set(keys.node('wrong-shape'), JSON.stringify({ v: LAYOUT_VERSION, id: 'wrong-shape', role: 'pilot' }))
      .set(keys.node('misfiled'), JSON.stringify({ ...(await reader.listNodes())[0], id: 'someone-else' }))
      .zadd(keys.nodes, farFuture, 'not-json', farFuture, 'wrong-shape', farFuture, 'misfiled')
      .zadd(keys.nodes, farFuture, 'not a node id', farFuture, 'no-record')
      .set(keys.stream('good'), JSON.stringify(validStream))
      .set(keys.stream('future'), JSON.stringify({ ...validStream, name: 'future', v: LAYOUT_VERSION + 1 }))
      .zadd(keys.streams, farFuture, 'good', farFuture, 'future')
      .exec();

    expect((await reader.listNodes()).map((node) => node.id)).toEqual(['reader']);
    expect(await reader.listStreams()).toEqual([validStream]);
    expect(await reader.lookupStream('future')).toBeUndefined();
    expect(warnings()).toEqual(
      expect.arrayContaining([
        'skipped an invalid index member',
        'skipped a record that is not JSON',
        'skipped an invalid record (corrupt, or written by another layout version)',
        'skipped a record stored under another key',
      ]),
    );

    // A claim on a name held by an unreadable record fails with an error naming the key.
    await expect(reader.claimStream({ name: 'future', kinds: ['video'] })).rejects.toThrow(
      `cluster registry: claimStream ${keys.stream('future')} failed: the key is held by an unreadable record`,
    );

    // Invalid messages on the channel are dropped; the valid one after them still arrives.
    const events: string[] = [];
    reader.on('streamup', (message) => events.push(message.stream));
    await admin.publish(keys.events, 'not json');
    await admin.publish(
      keys.events,
      JSON.stringify({ v: LAYOUT_VERSION, type: 'stream-sideways', stream: 'x' }),
    );
    await admin.publish(keys.events, JSON.stringify({ v: LAYOUT_VERSION, type: 'stream-up', stream: 'x' }));
    await admin.publish(
      keys.events,
      JSON.stringify({ v: LAYOUT_VERSION, type: 'stream-up', stream: 'ok', nodeId: 'n1', claimId: 'c1' }),
    );
    await eventually(async () => events.length > 0);
    expect(events).toEqual(['ok']);
    expect(warnings().filter((message) => message.startsWith('dropped'))).toEqual([
      'dropped a cluster event that is not JSON',
      'dropped an invalid cluster event',
      'dropped an invalid cluster event',
    ]);
  });

  it('close() releases everything it holds, announces it, and is idempotent', async () => {
    const prefix = freshPrefix();
    const keys = new ClusterKeys(prefix);
    const observer = await openReady(server, prefix, identity('observer', { role: 'edge' }));
    const origin = await openReady(server, prefix, identity('leaving'));
    await origin.claimStream({ name: 'one', kinds: ['video'] });
    await origin.claimStream({ name: 'two', kinds: ['audio'] });
    await origin.claimRelay('eu-west-1', 'three');

    const downs: string[] = [];
    observer.on('streamdown', (message) => {
      expect(message).toMatchObject({ nodeId: 'leaving', reason: 'node-shutdown' });
      downs.push(message.stream);
    });
    await Promise.all([origin.close(), origin.close()]);
    await origin.close();
    expect(origin.ready).toBe(false);

    expect(await observer.listStreams()).toEqual([]);
    expect((await observer.listNodes()).map((node) => node.id)).toEqual(['observer']);
    expect(await observer.lookupRelay('eu-west-1', 'three')).toBeUndefined();
    expect(
      await admin.exists(keys.node('leaving'), keys.stream('one'), keys.relay('eu-west-1', 'three')),
    ).toBe(0);
    await eventually(async () => downs.length === 2);
    expect(downs.sort()).toEqual(['one', 'two']);
    await expect(origin.claimStream({ name: 'late', kinds: ['video'] })).rejects.toThrow(
      /claimStream .* failed: the registry is closed/,
    );
  });
});

// --- Redis outages --------------------------------------------------------------------------------

describe('ClusterRegistry during a Redis outage', () => {
  let server: RedisServer;

  beforeAll(async () => {
    server = await startRedisServer();
  });

  afterAll(async () => {
    await server?.stop();
  });

  it('fails fast while Redis is down and re-registers everything when it is back', async () => {
    const prefix = freshPrefix();
    const keys = new ClusterKeys(prefix);
    const origin = await openReady(server, prefix, identity('origin-a'));
    const claim = await origin.claimStream({ name: 'enduring', kinds: ['video'] });
    await origin.claimRelay('eu-west-1', 'enduring');
    const lost: unknown[] = [];
    origin.on('leaselost', (event) => lost.push(event));

    const unavailable = nextEvent(origin, 'unavailable');
    await server.kill();
    const [error] = await unavailable;
    expect(error).toBeInstanceOf(ClusterRegistryError);
    expect(origin.ready).toBe(false);

    // No queueing while Redis is down: calls fail at once, saying what failed and why.
    for (const call of [
      () => origin.lookupStream('enduring'),
      () => origin.listNodes(),
      () => origin.claimStream({ name: 'newcomer', kinds: ['video'] }),
    ]) {
      // At once: nothing waits for Redis to come back (which it will not in this window).
      await expect(settlesWithin<unknown>(call(), 5000, 'the call')).rejects.toThrow(
        /^cluster registry: \w+ test\S+ failed: Redis is not connected$/,
      );
    }
    expect(await origin.heartbeatNow()).toBe(false);

    // Back, empty (no persistence): the node, its claim and its relay lease are registered again.
    const back = nextEvent(origin, 'ready', () => true, 10_000);
    await server.restart();
    await back;
    expect(origin.ready).toBe(true);
    expect(lost).toEqual([]);
    const admin = new Redis(server.url);
    try {
      expect(await admin.exists(keys.node('origin-a'))).toBe(1);
      expect(JSON.parse((await admin.get(keys.stream('enduring')))!)).toEqual(claim.claimed && claim.record);
      expect(await admin.exists(keys.relay('eu-west-1', 'enduring'))).toBe(1);
      expect(await admin.zscore(keys.streams, 'enduring')).not.toBeNull();
      expect((await origin.listStreams()).map((stream) => stream.name)).toEqual(['enduring']);
    } finally {
      admin.disconnect();
    }
  });

  it('reports a claim that another origin took while this one was cut off', async () => {
    const prefix = freshPrefix();
    const partition = await startPartitionableProxy(server.port);
    try {
      // A reaches Redis through a link the test can cut; B reaches it directly.
      const originA = await openReady(server, prefix, identity('origin-a'));
      const cutOff = openRegistry({ url: partition.url }, prefix, identity('origin-c'));
      await ready(cutOff);
      const originB = await openReady(server, prefix, identity('origin-b'));
      await cutOff.claimStream({ name: 'disputed', kinds: ['video'] });
      await cutOff.claimStream({ name: 'undisputed', kinds: ['video'] });

      const unavailable = nextEvent(cutOff, 'unavailable');
      partition.cut();
      await unavailable;
      // C's claims expire (nobody refreshes them); B takes one of the names meanwhile.
      await eventually(async () => (await originB.lookupStream('disputed')) === undefined);
      const claimB = await originB.claimStream({ name: 'disputed', kinds: ['video'] });
      if (!claimB.claimed) throw new Error('origin B should have claimed the stream');

      const lost = nextEvent(cutOff, 'leaselost');
      const back = nextEvent(cutOff, 'ready', () => true, 10_000);
      partition.heal();
      expect(await lost).toEqual([{ kind: 'stream', name: 'disputed', holder: claimB.record }]);
      await back;
      // The free one is registered again; the taken one stays B's.
      expect(await originA.lookupStream('undisputed')).toMatchObject({ nodeId: 'origin-c' });
      expect(await originA.lookupStream('disputed')).toEqual(claimB.record);
    } finally {
      await partition.close();
    }
  });

  it('treats a hung Redis as down: calls time out, the link is re-made, close() stays bounded', async () => {
    const prefix = freshPrefix();
    const registry = await openReady(server, prefix, identity('patient'));
    const leaving = await openReady(server, prefix, identity('leaving'));
    await leaving.claimStream({ name: 'frozen', kinds: ['video'] });
    const unavailable = nextEvent(registry, 'unavailable');
    process.kill(server.pid!, 'SIGSTOP');
    try {
      // Either the command waits out the 1 s command timeout, or the link was already dropped.
      await expect(settlesWithin(registry.lookupStream('frozen'), 5000, 'a lookup')).rejects.toThrow(
        /failed: (Redis did not answer in time|Redis is not connected)$/,
      );
      const [error] = await unavailable;
      expect(error.message).toMatch(/heartbeat .* failed: Redis did not answer in time/);
      expect(registry.ready).toBe(false);

      await settlesWithin(leaving.close(), 5000, 'close() against a frozen Redis');
    } finally {
      process.kill(server.pid!, 'SIGCONT');
    }
    await nextEvent(registry, 'ready', () => true, 10_000);
    expect(await registry.lookupStream('frozen').catch(() => 'failed')).not.toBe('failed');
  });

  it('subscribes again when its SUBSCRIBE timed out, and becomes ready', async () => {
    const proxy = await startSubscribeHoldingProxy(server.port, 1500); // command timeout: 1 s
    try {
      const registry = openRegistry({ url: proxy.url }, freshPrefix(), identity('slow-start'));
      const [error] = await nextEvent(registry, 'unavailable');
      expect(error.message).toMatch(/subscribe .* failed: Redis did not answer in time/);
      await nextEvent(registry, 'ready', () => true, 10_000);
      expect(proxy.held()).toBe(1);
    } finally {
      await proxy.close();
    }
  });

  it('starts while Redis is down and becomes ready when it comes up; close() stays bounded', async () => {
    await server.kill();
    const registry = openRegistry(server, freshPrefix(), identity('early-bird'));
    const [error] = await nextEvent(registry, 'unavailable');
    expect(error.message).toMatch(/connection to 127\.0\.0\.1:\d+ failed/);

    const readyEvent = nextEvent(registry, 'ready', () => true, 10_000);
    await server.restart();
    await readyEvent;

    await registry.claimStream({ name: 'orphan', kinds: ['video'] });
    await server.kill();
    await settlesWithin(registry.close(), 5000, 'close() with Redis down');
    await server.restart();
  });
});
