/**
 * An "envtest"-style Kubernetes control plane for tests: a REAL etcd and kube-apiserver on
 * loopback (no controllers, no nodes), an admin kubeconfig, and kubectl/helm bound to it.
 *
 * Binaries come from scripts/setup-kube-testenv.sh (built/unpacked once, then cached; see
 * docs/testing-kubernetes.md). Set RTCCDN_KUBE_TESTENV_BIN_DIR to use another bin directory.
 *
 * Security model of the test server (deliberately close to a real cluster):
 * - TLS with a throwaway CA; the admin identity is a client certificate in group `system:masters`
 *   (authorized by RBAC's bootstrap `cluster-admin` binding and the superuser short-circuit);
 * - `--authorization-mode=RBAC`, so tests can check the operator's Roles for real, e.g. with
 *   `kubectl --as=system:serviceaccount:NS:NAME` (impersonation is allowed for the admin);
 * - the `ServiceAccount` admission plugin is disabled: without kube-controller-manager no
 *   namespace gets its `default` ServiceAccount, and Pods would be rejected.
 * Without controllers: no garbage collection by ownerReferences, namespaces stay Terminating,
 * Deployments create no Pods.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { generateKeyPair, randomBytes } from 'node:crypto';
import { closeSync, existsSync, openSync } from 'node:fs';
import { mkdir, mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { request } from 'node:https';
import { constants, tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { freeTcpPorts } from './ports.js';

const SETUP_SCRIPT = fileURLToPath(new URL('../setup-kube-testenv.sh', import.meta.url));

export interface CommandResult {
  /** Exit code; 128 + signal number when the command was killed by a signal. */
  code: number;
  stdout: string;
  stderr: string;
}

export interface RunOptions {
  /** Written to the command's stdin (stdin is closed either way). */
  input?: string;
  env?: NodeJS.ProcessEnv;
  cwd?: string;
  /** Kill the command (SIGKILL) and reject after this long. Default 60 s. */
  timeoutMs?: number;
  /** Also copy the command's stderr here as it arrives (e.g. process.stderr for progress). */
  teeStderr?: NodeJS.WritableStream;
}

export interface KubeTestEnv {
  /** Admin kubeconfig (client certificate in group system:masters, namespace `default`). */
  kubeconfigPath: string;
  /** API server URL, https://127.0.0.1:<port>. */
  server: string;
  /** Directory holding kube-apiserver, etcd, kubectl and helm. */
  binDir: string;
  /** Temporary directory of this environment: PKI, etcd data, server logs (removed by stop()). */
  dir: string;
  /** Log files of the two servers (inside `dir`). */
  logs: { etcd: string; apiserver: string };
  /** Process ids of the two servers, e.g. to assert that stop() ended them. */
  pids: { etcd: number; apiserver: number };
  /** Ports in use on 127.0.0.1. */
  ports: { etcdClient: number; etcdPeer: number; apiserver: number };
  /** Runs kubectl against this environment (KUBECONFIG set). Never throws for a non-zero exit. */
  kubectl(args: string[], options?: RunOptions): Promise<CommandResult>;
  /** Runs helm against this environment, with helm's cache/config/data dirs inside `dir`. */
  helm(args: string[], options?: RunOptions): Promise<CommandResult>;
  /** Stops kube-apiserver then etcd (SIGTERM, SIGKILL after 10 s) and removes `dir`. Idempotent. */
  stop(): Promise<void>;
}

export interface KubeTestEnvOptions {
  /** Bin directory to use instead of running the setup script. */
  binDir?: string;
  /** Time allowed for etcd and kube-apiserver to become ready. Default 120 s. */
  startTimeoutMs?: number;
  /** Extra kube-apiserver flags, appended last (so they override the defaults). */
  apiServerArgs?: string[];
  /** Keep `dir` after stop() (for debugging). Also enabled by RTCCDN_KUBE_TESTENV_KEEP=1. */
  keepDir?: boolean;
}

/** Runs a command to completion, collecting its output. Rejects only if it cannot run or times out. */
export function runCommand(file: string, args: string[], options: RunOptions = {}): Promise<CommandResult> {
  const timeoutMs = options.timeoutMs ?? 60_000;
  return new Promise((resolve, reject) => {
    const child = spawn(file, args, {
      cwd: options.cwd,
      env: options.env ?? process.env,
      stdio: ['pipe', 'pipe', 'pipe'],
    });
    const stdout: Buffer[] = [];
    const stderr: Buffer[] = [];
    child.stdout.on('data', (chunk: Buffer) => stdout.push(chunk));
    child.stderr.on('data', (chunk: Buffer) => {
      stderr.push(chunk);
      options.teeStderr?.write(chunk);
    });
    let timedOut = false;
    const timer = setTimeout(() => {
      timedOut = true;
      child.kill('SIGKILL');
    }, timeoutMs);
    child.on('error', (error) => {
      clearTimeout(timer);
      reject(new Error(`cannot run ${file}: ${error.message}`));
    });
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      const result = {
        code: code ?? 128 + signalNumber(signal),
        stdout: Buffer.concat(stdout).toString('utf8'),
        stderr: Buffer.concat(stderr).toString('utf8'),
      };
      if (timedOut) {
        reject(
          new Error(`${file} ${args.join(' ')} timed out after ${timeoutMs} ms\n${tail(result.stderr)}`),
        );
      } else {
        resolve(result);
      }
    });
    child.stdin.on('error', () => {
      // the command exited without reading its input: its exit code tells what happened
    });
    child.stdin.end(options.input ?? '');
  });
}

let binariesPromise: Promise<string> | undefined;

/**
 * Directory with the testenv binaries: RTCCDN_KUBE_TESTENV_BIN_DIR if set, otherwise the last
 * stdout line of scripts/setup-kube-testenv.sh (seconds when cached; a cold run builds
 * kube-apiserver and etcd from Go modules, about 4 min on 2 idle cores). Memoized per process.
 */
export function ensureKubeTestEnvBinaries(timeoutMs = 60 * 60_000): Promise<string> {
  const fromEnv = process.env.RTCCDN_KUBE_TESTENV_BIN_DIR;
  if (fromEnv) return Promise.resolve(fromEnv);
  binariesPromise ??= (async () => {
    const result = await runCommand('bash', [SETUP_SCRIPT], { timeoutMs, teeStderr: process.stderr });
    const binDir = result.stdout.trim().split('\n').pop()?.trim() ?? '';
    if (result.code !== 0 || !binDir || !existsSync(join(binDir, 'kube-apiserver'))) {
      throw new Error(`${SETUP_SCRIPT} failed (exit ${result.code}):\n${tail(result.stderr)}`);
    }
    return binDir;
  })();
  binariesPromise.catch(() => {
    binariesPromise = undefined; // let a later call retry
  });
  return binariesPromise;
}

/** Starts etcd and kube-apiserver on free loopback ports and waits until the API server is ready. */
export async function startKubeTestEnv(options: KubeTestEnvOptions = {}): Promise<KubeTestEnv> {
  const binDir = options.binDir ?? (await ensureKubeTestEnvBinaries());
  const startTimeoutMs = options.startTimeoutMs ?? 120_000;
  const keepDir = options.keepDir ?? process.env.RTCCDN_KUBE_TESTENV_KEEP === '1';
  await sweepAbandonedDirs();
  const dir = await mkdtemp(join(tmpdir(), DIR_PREFIX));
  await writeFile(join(dir, OWNER_FILE), `${process.pid}\n`);
  const logs = { etcd: join(dir, 'etcd.log'), apiserver: join(dir, 'kube-apiserver.log') };
  const running: ManagedProcess[] = [];
  const killAllNow = (): void => {
    for (const managed of running) managed.killNow();
  };
  // Last resort if the test process exits without stop(); setpriv's parent-death signal also
  // covers a test process that is killed outright.
  process.once('exit', killAllNow);

  try {
    const pki = await createPki(dir);
    let etcd: ManagedProcess | undefined;
    let apiserver: ManagedProcess | undefined;
    let ports: KubeTestEnv['ports'] | undefined;
    // A port found free can be taken by someone else before the server binds it: in that case
    // start over with new ports (a handful of times).
    for (let attempt = 1; !apiserver; attempt++) {
      const [etcdClient, etcdPeer, apiPort] = await freeTcpPorts(3);
      ports = { etcdClient: etcdClient!, etcdPeer: etcdPeer!, apiserver: apiPort! };
      try {
        await rm(join(dir, 'etcd-data'), { recursive: true, force: true });
        etcd = startEtcd(binDir, dir, logs.etcd, ports);
        running.push(etcd);
        await waitForEtcd(etcd, ports.etcdClient, startTimeoutMs);
        apiserver = startApiServer(binDir, dir, logs.apiserver, pki, ports, options.apiServerArgs ?? []);
        running.push(apiserver);
        await waitForApiServer(apiserver, ports.apiserver, pki, startTimeoutMs);
      } catch (error) {
        apiserver = undefined;
        for (const managed of running.splice(0).reverse()) await managed.terminate();
        if (!(error instanceof PortInUseError)) throw error;
        if (attempt >= 5) throw new Error(`${error.message}, ${attempt} times with fresh ports`);
      }
    }
    if (!etcd || !ports) throw new Error('unreachable: started without etcd');

    const server = `https://127.0.0.1:${ports.apiserver}`;
    const kubeconfigPath = join(dir, 'kubeconfig');
    await writeFile(kubeconfigPath, await kubeconfig(server, pki), { mode: 0o600 });
    const toolEnv = (extra: NodeJS.ProcessEnv = {}): NodeJS.ProcessEnv => ({
      ...process.env,
      KUBECONFIG: kubeconfigPath,
      KUBECACHEDIR: join(dir, 'kube-cache'),
      HELM_CACHE_HOME: join(dir, 'helm', 'cache'),
      HELM_CONFIG_HOME: join(dir, 'helm', 'config'),
      HELM_DATA_HOME: join(dir, 'helm', 'data'),
      ...extra,
    });
    const etcdProcess = etcd;
    const apiProcess = apiserver;
    let stopping: Promise<void> | undefined;
    return {
      kubeconfigPath,
      server,
      binDir,
      dir,
      logs,
      pids: { etcd: etcdProcess.pid, apiserver: apiProcess.pid },
      ports,
      kubectl: (args, runOptions = {}) =>
        runCommand(join(binDir, 'kubectl'), args, { ...runOptions, env: toolEnv(runOptions.env) }),
      helm: (args, runOptions = {}) =>
        runCommand(join(binDir, 'helm'), args, { ...runOptions, env: toolEnv(runOptions.env) }),
      stop() {
        stopping ??= (async () => {
          await apiProcess.terminate();
          await etcdProcess.terminate();
          process.removeListener('exit', killAllNow);
          if (!keepDir) await rm(dir, { recursive: true, force: true });
        })();
        return stopping;
      },
    };
  } catch (error) {
    // Keep `dir` with its logs (the error message points at them), minus etcd's 60 MB of data.
    for (const managed of running.splice(0).reverse()) await managed.terminate();
    await rm(join(dir, 'etcd-data'), { recursive: true, force: true });
    process.removeListener('exit', killAllNow);
    throw error;
  }
}

const DIR_PREFIX = 'rtccdn-kube-testenv-';
const OWNER_FILE = 'owner.pid';

/**
 * Removes the temp dirs of environments whose test process is gone (it was killed before stop(),
 * or the start failed and the dir was kept for its logs). Their servers died with it (setpriv).
 */
async function sweepAbandonedDirs(): Promise<void> {
  const entries = await readdir(tmpdir()).catch(() => [] as string[]);
  for (const entry of entries.filter((name) => name.startsWith(DIR_PREFIX))) {
    const dir = join(tmpdir(), entry);
    const owner = Number.parseInt(await readFile(join(dir, OWNER_FILE), 'utf8').catch(() => ''), 10);
    if (Number.isInteger(owner) && owner > 0 && !isAlive(owner)) {
      await rm(dir, { recursive: true, force: true }).catch(() => undefined);
    }
  }
}

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === 'EPERM'; // exists, owned by another user
  }
}

// --- processes ----------------------------------------------------------------------------------

class PortInUseError extends Error {}

interface ManagedProcess {
  name: string;
  pid: number;
  logPath: string;
  readonly exited: boolean;
  /** SIGTERM, then SIGKILL after graceMs; resolves once the process is gone. */
  terminate(graceMs?: number): Promise<void>;
  killNow(): void;
}

const SETPRIV = ['/usr/bin/setpriv', '/bin/setpriv'].find((path) => existsSync(path));

function startProcess(name: string, binary: string, args: string[], logPath: string): ManagedProcess {
  const fd = openSync(logPath, 'w'); // truncated: a retried start must not see the old output
  let child: ChildProcess;
  try {
    // setpriv --pdeathsig: the kernel kills the server if this (test) process dies first.
    const [file, argv] = SETPRIV ? [SETPRIV, ['--pdeathsig', 'KILL', '--', binary, ...args]] : [binary, args];
    child = spawn(file, argv, { stdio: ['ignore', fd, fd] });
  } finally {
    closeSync(fd);
  }
  if (child.pid === undefined) throw new Error(`cannot start ${name} (${binary})`);
  let exited = false;
  const exit = new Promise<void>((resolve) => {
    child.once('exit', () => {
      exited = true;
      resolve();
    });
    child.once('error', () => {
      exited = true;
      resolve();
    });
  });
  return {
    name,
    pid: child.pid,
    logPath,
    get exited() {
      return exited;
    },
    async terminate(graceMs = 10_000) {
      if (exited) return;
      child.kill('SIGTERM');
      const timer = setTimeout(() => child.kill('SIGKILL'), graceMs);
      await exit;
      clearTimeout(timer);
    },
    killNow() {
      if (!exited) child.kill('SIGKILL');
    },
  };
}

function startEtcd(
  binDir: string,
  dir: string,
  logPath: string,
  ports: KubeTestEnv['ports'],
): ManagedProcess {
  const client = `http://127.0.0.1:${ports.etcdClient}`;
  const peer = `http://127.0.0.1:${ports.etcdPeer}`;
  return startProcess(
    'etcd',
    join(binDir, 'etcd'),
    [
      '--name=testenv',
      `--data-dir=${join(dir, 'etcd-data')}`,
      `--listen-client-urls=${client}`,
      `--advertise-client-urls=${client}`,
      `--listen-peer-urls=${peer}`,
      `--initial-advertise-peer-urls=${peer}`,
      `--initial-cluster=testenv=${peer}`,
      '--initial-cluster-state=new',
      // Test data is disposable: skip fsync (much faster on shared disks).
      '--unsafe-no-fsync',
      '--log-level=warn',
    ],
    logPath,
  );
}

function startApiServer(
  binDir: string,
  dir: string,
  logPath: string,
  pki: Pki,
  ports: KubeTestEnv['ports'],
  extraArgs: string[],
): ManagedProcess {
  return startProcess(
    'kube-apiserver',
    join(binDir, 'kube-apiserver'),
    [
      `--etcd-servers=http://127.0.0.1:${ports.etcdClient}`,
      '--bind-address=127.0.0.1',
      '--advertise-address=127.0.0.1',
      `--secure-port=${ports.apiserver}`,
      `--cert-dir=${join(dir, 'apiserver-certs')}`,
      `--tls-cert-file=${pki.servingCert}`,
      `--tls-private-key-file=${pki.servingKey}`,
      `--client-ca-file=${pki.caCert}`,
      '--service-account-issuer=https://kubernetes.default.svc.cluster.local',
      `--service-account-key-file=${pki.serviceAccountPublicKey}`,
      `--service-account-signing-key-file=${pki.serviceAccountPrivateKey}`,
      '--service-cluster-ip-range=10.0.0.0/24',
      '--authorization-mode=RBAC',
      '--disable-admission-plugins=ServiceAccount',
      '--allow-privileged=true',
      // The default lease reconciler would publish 127.0.0.1 as the endpoint of the `kubernetes`
      // Service, which Endpoints validation rejects (loopback): nothing needs it here.
      '--endpoint-reconciler-type=none',
      '--profiling=false',
      '--v=1',
      ...extraArgs,
    ],
    logPath,
  );
}

async function waitForEtcd(etcd: ManagedProcess, port: number, timeoutMs: number): Promise<void> {
  await poll(etcd, timeoutMs, async () => {
    const response = await fetch(`http://127.0.0.1:${port}/health`, { signal: AbortSignal.timeout(2_000) });
    const body = (await response.json()) as { health?: string };
    return response.ok && body.health === 'true';
  });
}

async function waitForApiServer(
  apiserver: ManagedProcess,
  port: number,
  pki: Pki,
  timeoutMs: number,
): Promise<void> {
  const [ca, cert, key] = await Promise.all([
    readFile(pki.caCert),
    readFile(pki.adminCert),
    readFile(pki.adminKey),
  ]);
  await poll(apiserver, timeoutMs, () =>
    httpsStatus(port, '/readyz', { ca, cert, key }).then((s) => s === 200),
  );
}

/** Polls `ready` until it returns true; fails early (with the log tail) if the process exits. */
async function poll(
  managed: ManagedProcess,
  timeoutMs: number,
  ready: () => Promise<boolean>,
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (managed.exited) {
      const log = await readFile(managed.logPath, 'utf8').catch(() => '');
      if (/address already in use/i.test(log)) {
        throw new PortInUseError(`${managed.name}: port already in use (log: ${managed.logPath})`);
      }
      throw new Error(`${managed.name} exited during start; log: ${managed.logPath}\n${tail(log)}`);
    }
    if (await ready().catch(() => false)) return;
    if (Date.now() > deadline) {
      const log = await readFile(managed.logPath, 'utf8').catch(() => '');
      throw new Error(
        `${managed.name} not ready after ${timeoutMs / 1000} s; log: ${managed.logPath}\n${tail(log)}`,
      );
    }
    await new Promise((resolve) => setTimeout(resolve, 200));
  }
}

function httpsStatus(
  port: number,
  path: string,
  tls: { ca: Buffer; cert: Buffer; key: Buffer },
): Promise<number> {
  return new Promise((resolve, reject) => {
    const req = request(
      { host: '127.0.0.1', port, path, method: 'GET', agent: false, timeout: 3_000, ...tls },
      (response) => {
        response.resume();
        response.on('end', () => resolve(response.statusCode ?? 0));
      },
    );
    req.on('timeout', () => req.destroy(new Error('timeout')));
    req.on('error', reject);
    req.end();
  });
}

// --- PKI ----------------------------------------------------------------------------------------

interface Pki {
  caCert: string;
  servingCert: string;
  servingKey: string;
  adminCert: string;
  adminKey: string;
  serviceAccountPrivateKey: string;
  serviceAccountPublicKey: string;
}

const OPENSSL_CONFIG = `[req]
distinguished_name = dn
prompt = no
[dn]
CN = placeholder
[ca]
basicConstraints = critical, CA:TRUE
keyUsage = critical, keyCertSign, cRLSign, digitalSignature
subjectKeyIdentifier = hash
[serving]
basicConstraints = critical, CA:FALSE
keyUsage = critical, digitalSignature, keyEncipherment
extendedKeyUsage = serverAuth
authorityKeyIdentifier = keyid
subjectAltName = IP:127.0.0.1, DNS:localhost, IP:10.0.0.1, DNS:kubernetes, DNS:kubernetes.default, DNS:kubernetes.default.svc, DNS:kubernetes.default.svc.cluster.local
[client]
basicConstraints = critical, CA:FALSE
keyUsage = critical, digitalSignature, keyEncipherment
extendedKeyUsage = clientAuth
authorityKeyIdentifier = keyid
`;

/** A throwaway CA (EC P-256, valid 2 days), a serving cert, an admin client cert, an SA key pair. */
async function createPki(dir: string): Promise<Pki> {
  const pkiDir = join(dir, 'pki');
  await mkdir(pkiDir, { mode: 0o700 });
  const path = (name: string): string => join(pkiDir, name);
  const config = path('openssl.cnf');
  await writeFile(config, OPENSSL_CONFIG);
  const openssl = async (args: string[]): Promise<void> => {
    const result = await runCommand('openssl', args, { timeoutMs: 30_000 });
    if (result.code !== 0) throw new Error(`openssl ${args[0]} failed: ${result.stderr.trim()}`);
  };
  const newKey = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes'];
  await openssl(
    ['req', '-x509', '-config', config, '-extensions', 'ca', ...newKey, '-days', '2'].concat([
      '-subj',
      '/CN=rtccdn-kube-testenv-ca',
      '-keyout',
      path('ca.key'),
      '-out',
      path('ca.crt'),
    ]),
  );
  const issue = async (name: string, subject: string, extensions: string): Promise<void> => {
    await openssl(
      ['req', '-new', '-config', config, ...newKey, '-subj', subject].concat([
        '-keyout',
        path(`${name}.key`),
        '-out',
        path(`${name}.csr`),
      ]),
    );
    await openssl(
      ['x509', '-req', '-in', path(`${name}.csr`), '-CA', path('ca.crt'), '-CAkey', path('ca.key')]
        .concat(['-set_serial', `0x${randomBytes(16).toString('hex')}`, '-days', '2', '-sha256'])
        .concat(['-extfile', config, '-extensions', extensions, '-out', path(`${name}.crt`)]),
    );
  };
  const serviceAccountKeys = promisify(generateKeyPair)('rsa', {
    modulusLength: 2048,
    publicKeyEncoding: { type: 'spki', format: 'pem' },
    privateKeyEncoding: { type: 'pkcs8', format: 'pem' },
  });
  await Promise.all([
    issue('serving', '/CN=kube-apiserver', 'serving'),
    issue('admin', '/O=system:masters/CN=rtccdn-testenv-admin', 'client'),
  ]);
  const { publicKey, privateKey } = await serviceAccountKeys;
  await writeFile(path('sa.key'), privateKey, { mode: 0o600 });
  await writeFile(path('sa.pub'), publicKey);
  return {
    caCert: path('ca.crt'),
    servingCert: path('serving.crt'),
    servingKey: path('serving.key'),
    adminCert: path('admin.crt'),
    adminKey: path('admin.key'),
    serviceAccountPrivateKey: path('sa.key'),
    serviceAccountPublicKey: path('sa.pub'),
  };
}

/** A self-contained admin kubeconfig (certificates embedded). */
async function kubeconfig(server: string, pki: Pki): Promise<string> {
  const [ca, cert, key] = await Promise.all(
    [pki.caCert, pki.adminCert, pki.adminKey].map(async (file) => (await readFile(file)).toString('base64')),
  );
  return `apiVersion: v1
kind: Config
clusters:
  - name: kube-testenv
    cluster:
      server: ${server}
      certificate-authority-data: ${ca}
users:
  - name: testenv-admin
    user:
      client-certificate-data: ${cert}
      client-key-data: ${key}
contexts:
  - name: kube-testenv
    context:
      cluster: kube-testenv
      user: testenv-admin
      namespace: default
current-context: kube-testenv
`;
}

// --- small utilities ----------------------------------------------------------------------------

function signalNumber(signal: NodeJS.Signals | null): number {
  return signal ? (constants.signals[signal] ?? 0) : 0;
}

function tail(text: string, lines = 20): string {
  return text.trimEnd().split('\n').slice(-lines).join('\n');
}
