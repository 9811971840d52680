/**
 * A real, throwaway redis-server for tests: Debian's binary on a free loopback port, no
 * persistence, in a temp dir; killed with the test process (setpriv --pdeathsig) if stop() is
 * never reached. kill() and restart() simulate a crash and a recovery (same port, empty data, as
 * a Redis without persistence comes back).
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { type AddressInfo, connect, createServer, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { freeTcpPort } from './ports.js';

const REDIS_SERVER = process.env.RTCCDN_REDIS_SERVER ?? '/usr/bin/redis-server';
const SETPRIV = ['/usr/bin/setpriv', '/bin/setpriv'].find((path) => existsSync(path));
const START_TIMEOUT_MS = 10_000;

export interface RedisServer {
  /** redis://127.0.0.1:<port> */
  readonly url: string;
  readonly port: number;
  /** Temp dir holding the server's log (removed by stop()). */
  readonly dir: string;
  /** Process id of the running server; undefined while it is down. */
  readonly pid: number | undefined;
  /** SIGTERM (SIGKILL after 5 s), then removes `dir`. Idempotent. */
  stop(): Promise<void>;
  /** SIGKILL: the server vanishes without closing connections gracefully (a crash). */
  kill(): Promise<void>;
  /** Starts the server again on the same port (after kill(); kills it first if it is running). */
  restart(): Promise<void>;
}

/**
 * Starts redis-server on a free port of 127.0.0.1 (and of `options.bind`, more addresses
 * separated by spaces) and waits until it answers PING.
 */
export async function startRedisServer(options: { bind?: string } = {}): Promise<RedisServer> {
  const bind = ['127.0.0.1', ...(options.bind ? options.bind.split(' ') : [])];
  if (!existsSync(REDIS_SERVER)) {
    throw new Error(
      `${REDIS_SERVER} not found: run scripts/setup.sh --test (installs Debian's redis-server)`,
    );
  }
  const dir = await mkdtemp(join(tmpdir(), 'rtccdn-redis-'));
  let running: RunningServer | undefined;
  let port = 0;
  try {
    // A port found free can be taken before redis binds it: try again with another, a few times.
    for (let attempt = 1; !running; attempt++) {
      port = await freeTcpPort();
      try {
        running = await launch(dir, port, [], REDIS_SERVER, bind);
      } catch (error) {
        if (!(error instanceof PortInUseError) || attempt >= 5) throw error;
      }
    }
  } catch (error) {
    await rm(dir, { recursive: true, force: true });
    throw error;
  }
  let current: RunningServer | undefined = running;
  const killOnExit = (): void => {
    current?.child.kill('SIGKILL');
  };
  process.once('exit', killOnExit);
  let stopping: Promise<void> | undefined;
  return {
    url: `redis://127.0.0.1:${port}`,
    port,
    dir,
    get pid() {
      return current?.child.pid;
    },
    stop() {
      stopping ??= (async () => {
        await current?.terminate('SIGTERM');
        current = undefined;
        process.removeListener('exit', killOnExit);
        await rm(dir, { recursive: true, force: true });
      })();
      return stopping;
    },
    async kill() {
      await current?.terminate('SIGKILL');
      current = undefined;
    },
    async restart() {
      if (stopping) throw new Error('redis-server was stopped; start a new one');
      await current?.terminate('SIGKILL');
      current = undefined;
      // The port is ours again at once (no TIME_WAIT on a listening socket), unless someone took it.
      current = await launch(dir, port, [], REDIS_SERVER, bind);
    },
  };
}

export class PortInUseError extends Error {}

export interface RunningServer {
  child: ChildProcess;
  terminate(signal: 'SIGTERM' | 'SIGKILL'): Promise<void>;
}

/**
 * Starts redis-server (or, with `binary`, redis-sentinel and a config file first in `extraArgs`)
 * on `port` and waits until it answers PING. PortInUseError if the port was taken meanwhile.
 */
export async function launch(
  dir: string,
  port: number,
  extraArgs: string[] = [],
  binary = REDIS_SERVER,
  bind: string[] = ['127.0.0.1'],
): Promise<RunningServer> {
  const logPath = join(dir, `redis-${port}.log`);
  const args = [
    ...extraArgs,
    '--port',
    String(port),
    '--bind',
    ...bind,
    // Clients from a test's network namespace are not loopback: protected mode would refuse them.
    ...(bind.length > 1 ? ['--protected-mode', 'no'] : []),
    '--save',
    '',
    '--appendonly',
    'no',
    '--dir',
    dir,
    '--logfile',
    logPath,
    '--daemonize',
    'no',
  ];
  const [file, argv] = SETPRIV ? [SETPRIV, ['--pdeathsig', 'KILL', '--', binary, ...args]] : [binary, args];
  const child = spawn(file, argv, { stdio: 'ignore' });
  const exited = new Promise<void>((resolve) => {
    child.once('exit', () => resolve());
    child.once('error', () => resolve());
  });
  const server: RunningServer = {
    child,
    async terminate(signal) {
      if (child.exitCode !== null || child.signalCode !== null) return;
      child.kill(signal);
      const forceKill = setTimeout(() => child.kill('SIGKILL'), 5_000);
      await exited;
      clearTimeout(forceKill);
    },
  };
  const deadline = Date.now() + START_TIMEOUT_MS;
  for (;;) {
    if (child.exitCode !== null || child.signalCode !== null) {
      const log = await readFile(logPath, 'utf8').catch(() => '');
      if (/address already in use/i.test(log)) throw new PortInUseError(`port ${port} is in use`);
      throw new Error(
        `redis-server exited during start (${child.exitCode ?? child.signalCode}):\n${tail(log)}`,
      );
    }
    if (await ping(port)) return server;
    if (Date.now() > deadline) {
      await server.terminate('SIGKILL');
      const log = await readFile(logPath, 'utf8').catch(() => '');
      throw new Error(
        `redis-server not answering on port ${port} after ${START_TIMEOUT_MS} ms:\n${tail(log)}`,
      );
    }
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

/** True when a server on the port answers PING with PONG (RESP, no client library). */
function ping(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = connect({ host: '127.0.0.1', port });
    let reply = '';
    const done = (ok: boolean): void => {
      socket.destroy();
      resolve(ok);
    };
    socket.setTimeout(1_000, () => done(false));
    socket.once('error', () => done(false));
    socket.once('connect', () => socket.write('PING\r\n'));
    socket.on('data', (chunk) => {
      reply += chunk.toString('utf8');
      if (reply.includes('\r\n')) done(reply.startsWith('+PONG'));
    });
  });
}

function tail(text: string, lines = 20): string {
  return text.trimEnd().split('\n').slice(-lines).join('\n');
}

/**
 * A TCP proxy to Redis that holds the first SUBSCRIBE it sees for `holdMs` before passing it on
 * (longer than a client's command timeout: that SUBSCRIBE times out), everything else at once.
 */
export async function startSubscribeHoldingProxy(
  redisPort: number,
  holdMs: number,
): Promise<{ url: string; held(): number; close(): Promise<void> }> {
  const proxy = await startHoldingProxy(redisPort);
  let held = 0;
  proxy.hold((text) => {
    if (held > 0 || !/\r\nsubscribe\r\n/i.test(text)) return false;
    held++;
    setTimeout(() => proxy.release(), holdMs).unref();
    return true;
  });
  return { url: proxy.url, held: () => held, close: () => proxy.close() };
}

export interface HoldingProxy {
  /** redis://127.0.0.1:<proxy port> */
  readonly url: string;
  /** Drops every connection through the proxy at once, as a network failure would. */
  cut(): void;
  /**
   * From now on, a client connection that sends a chunk `matches` accepts (its text, RESP) is
   * held: that chunk and everything it sends later reach Redis only at release().
   */
  hold(matches: (text: string) => boolean): void;
  /** Connections held since the last release(). */
  held(): number;
  /** Stops holding: every held connection's commands go on to Redis, in order. */
  release(): void;
  close(): Promise<void>;
}

/**
 * A TCP proxy to Redis that a test controls (cut connections, hold the commands of some), to
 * put a client in the states between a lost connection and a working one.
 */
export async function startHoldingProxy(redisPort: number): Promise<HoldingProxy> {
  let matches: ((text: string) => boolean) | undefined;
  let held = 0;
  const connections = new Set<{ client: Socket; upstream: Socket; queue: Buffer[] | undefined }>();
  const proxy = createServer((client) => {
    const upstream = connect(redisPort, '127.0.0.1');
    const connection = { client, upstream, queue: undefined as Buffer[] | undefined };
    connections.add(connection);
    for (const socket of [client, upstream]) socket.on('error', () => socket.destroy());
    client.once('close', () => {
      upstream.destroy();
      connections.delete(connection);
    });
    upstream.once('close', () => client.destroy());
    upstream.pipe(client);
    client.on('data', (chunk: Buffer) => {
      if (!connection.queue && matches?.(chunk.toString('latin1'))) {
        connection.queue = [];
        held++;
      }
      if (connection.queue) connection.queue.push(chunk);
      else upstream.write(chunk);
    });
  });
  await new Promise<void>((resolve) => proxy.listen(0, '127.0.0.1', resolve));
  return {
    url: `redis://127.0.0.1:${(proxy.address() as AddressInfo).port}`,
    cut() {
      for (const { client } of connections) client.destroy();
    },
    hold(accept) {
      matches = accept;
    },
    held: () => held,
    release() {
      matches = undefined;
      held = 0;
      for (const connection of connections) {
        for (const chunk of connection.queue ?? []) connection.upstream.write(chunk);
        connection.queue = undefined;
      }
    },
    async close() {
      for (const { client } of connections) client.destroy();
      await new Promise((resolve) => proxy.close(resolve));
    },
  };
}
