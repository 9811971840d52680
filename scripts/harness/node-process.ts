import { type ChildProcess, spawn } from 'node:child_process';
import { once } from 'node:events';
import { closeSync, existsSync, openSync, readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { tlsRequest } from './https.js';
import { freeTcpPorts } from './ports.js';

const SETPRIV = ['/usr/bin/setpriv', '/bin/setpriv'].find((path) => existsSync(path));
const MAIN = fileURLToPath(new URL('../../media-node/src/main.ts', import.meta.url));

export interface NodeProcess {
  baseUrl: string;
  /** The JSON log lines written so far (with `captureLogs`). */
  logs: Record<string, unknown>[];
  /** The internal port: /metrics, the full stream list, and (in a CDN) the node-to-node API. */
  internalUrl: string;
  child: ChildProcess;
  stop(): Promise<number | null>;
}

/**
 * Runs a media node as its own OS process (as in production) and waits until it is ready.
 * With RTCCDN_TEST_LOG_DIR set, each node's JSON log goes to <dir>/<logName>.log.
 */
export async function spawnNode(
  env: Record<string, string>,
  logName?: string,
  options: {
    captureLogs?: boolean;
    /** A command the node runs under, e.g. ['ip', 'netns', 'exec', 'ns1'] (a node in a netns). */
    wrap?: string[];
  } = {},
): Promise<NodeProcess> {
  const port = env.PORT ?? '18080';
  const internalPort = env.INTERNAL_PORT ?? String((await freeTcpPorts(1))[0]);
  const logDir = process.env.RTCCDN_TEST_LOG_DIR;
  const logFile = options.captureLogs
    ? 'pipe'
    : logDir
      ? openSync(`${logDir}/${logName ?? `node-${port}`}.log`, 'a')
      : 'ignore';
  // With setpriv, the node dies with the test process even if the test never stops it.
  const [command, ...commandArgs] = [
    ...(options.wrap ?? []),
    ...(SETPRIV
      ? [SETPRIV, '--pdeathsig', 'KILL', '--', process.execPath, '--import', 'tsx', MAIN]
      : [process.execPath, '--import', 'tsx', MAIN]),
  ] as [string, ...string[]];
  const child = spawn(command, commandArgs, {
    env: {
      ...process.env,
      LOG_LEVEL: options.captureLogs ? 'info' : logDir ? 'debug' : 'warn',
      DEMO_PAGE: 'false',
      // Every test client is 127.0.0.1: per-client quotas are for the tests that are about them.
      ...TEST_CLIENT_QUOTAS,
      ...env,
      PORT: port,
      INTERNAL_PORT: internalPort,
    },
    stdio: ['ignore', logFile, 'pipe'],
  });
  // Passed through as before; the last lines also go into a start failure's error.
  let stderrTail = '';
  child.stderr!.on('data', (chunk: Buffer) => {
    process.stderr.write(chunk);
    stderrTail = (stderrTail + chunk.toString('utf8')).slice(-2000);
  });
  if (typeof logFile === 'number') closeSync(logFile);
  const logs: Record<string, unknown>[] = [];
  if (options.captureLogs) {
    let partial = '';
    child.stdout!.on('data', (chunk: Buffer) => {
      const lines = (partial + chunk.toString('utf8')).split('\n');
      partial = lines.pop() ?? '';
      for (const line of lines) {
        try {
          logs.push(JSON.parse(line) as Record<string, unknown>);
        } catch {
          // not a JSON log line
        }
      }
    });
  }
  // Where the node listens (HOST), unless that is every address.
  const host = env.HOST && env.HOST !== '0.0.0.0' ? env.HOST : '127.0.0.1';
  // With TLS_CERT_FILE the public port is HTTPS; readiness is asked trusting that certificate.
  const tlsCa = env.TLS_CERT_FILE ? readFileSync(env.TLS_CERT_FILE, 'utf8') : undefined;
  const baseUrl = `${tlsCa ? 'https' : 'http'}://${host}:${port}`;
  const ready = async () =>
    tlsCa
      ? (await tlsRequest(`${baseUrl}/readyz`, { ca: tlsCa })).status === 200
      : (await fetch(`${baseUrl}/readyz`, { signal: AbortSignal.timeout(1000) })).ok;
  // A liveness bound: a node that is not ready by then is not coming (a loaded CI box is slow).
  const deadline = Date.now() + 60_000;
  for (;;) {
    if (child.exitCode !== null) {
      if (!child.stderr!.closed) await once(child.stderr!, 'close');
      const said = stderrTail.trim().split('\n').at(-1);
      throw new Error(`media node exited with ${child.exitCode} during start${said ? `: ${said}` : ''}`);
    }
    try {
      if (await ready()) break;
    } catch {
      // not listening yet
    }
    if (Date.now() > deadline) {
      child.kill('SIGKILL');
      throw new Error('media node not ready after 60 s');
    }
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  return {
    baseUrl,
    logs,
    internalUrl: `http://${host}:${internalPort}`,
    child,
    async stop() {
      if (child.exitCode !== null) return child.exitCode;
      child.kill('SIGTERM');
      const [code] = (await once(child, 'exit')) as [number | null];
      return code;
    },
  };
}

/** Per-client quotas high enough for a test process whose every peer shares one address. */
export const TEST_CLIENT_QUOTAS: Record<string, string> = {
  MAX_PENDING_SESSIONS_PER_CLIENT: '10000',
  RENDITION_STARTS_PER_CLIENT: '10000',
  MAX_PUBLISHES_PER_CLIENT: '10000',
};
