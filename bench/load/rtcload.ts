/**
 * The benchmarks' handle on rtcload (bench/load/*.go) and on the processes they measure: builds
 * the binary and the pre-encoded media once (cached), runs publishers and viewer crowds as child
 * processes (one JSON event per stdout line), and reads CPU time and memory from /proc.
 */
import { type ChildProcess, execFileSync, spawn } from 'node:child_process';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import os from 'node:os';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';

const HERE = fileURLToPath(new URL('.', import.meta.url));
const SETPRIV = ['/usr/bin/setpriv', '/bin/setpriv'].find((path) => existsSync(path));

let binary: string | undefined;
/** The rtcload binary (built on first use, from the Go module proxy's modules, then cached). */
export function rtcload(): string {
  binary ??= lastLine(execFileSync('bash', [`${HERE}build.sh`], { encoding: 'utf8' }));
  return binary;
}

/** A constant-bitrate 640x360@30 file (FFmpeg, once): VP8 in IVF or H.264 Annex B. */
export function mediaFile(codec: 'vp8' | 'h264', kbps: number): string {
  return lastLine(execFileSync('bash', [`${HERE}media.sh`, codec, String(kbps)], { encoding: 'utf8' }));
}

function lastLine(text: string): string {
  return text.trim().split('\n').at(-1)!;
}

export type LoadEvent = Record<string, unknown> & { event: string };

export interface LoadProcess {
  child: ChildProcess;
  events: LoadEvent[];
  /** Resolves with the next event of that name not returned before (rejects if the process exits first). */
  next(event: string): Promise<LoadEvent>;
  /** Resolves when the process exits. */
  exited: Promise<number | null>;
  stop(): Promise<void>;
}

function run(args: string[], env: Record<string, string> = {}): LoadProcess {
  const [file, argv] = SETPRIV
    ? [SETPRIV, ['--pdeathsig', 'KILL', '--', rtcload(), ...args]]
    : [rtcload(), args];
  const child = spawn(file, argv, { stdio: ['pipe', 'pipe', 'pipe'], env: { ...process.env, ...env } });
  const events: LoadEvent[] = [];
  const waiters: { event: string; resolve: (e: LoadEvent) => void; reject: (e: Error) => void }[] = [];
  const taken = new Set<LoadEvent>();
  let stderr = '';
  child.stderr!.on('data', (chunk: Buffer) => {
    stderr = (stderr + chunk.toString('utf8')).slice(-4000);
  });
  createInterface({ input: child.stdout! }).on('line', (line) => {
    let parsed: LoadEvent;
    try {
      parsed = JSON.parse(line) as LoadEvent;
    } catch {
      return;
    }
    events.push(parsed);
    const waiter = waiters.find((w) => w.event === parsed.event);
    if (waiter) {
      waiters.splice(waiters.indexOf(waiter), 1);
      taken.add(parsed);
      waiter.resolve(parsed);
    }
  });
  const exited = new Promise<number | null>((resolve) => {
    child.once('exit', (code) => {
      for (const waiter of waiters.splice(0))
        waiter.reject(
          new Error(`rtcload ${args[0]} exited (${code}) before "${waiter.event}": ${stderr.trim()}`),
        );
      resolve(code);
    });
  });
  return {
    child,
    events,
    exited,
    next(event) {
      const seen = events.find((e) => e.event === event && !taken.has(e));
      if (seen) {
        taken.add(seen);
        return Promise.resolve(seen);
      }
      if (child.exitCode !== null) return Promise.reject(new Error(`rtcload exited: ${stderr.trim()}`));
      return new Promise((resolve, reject) => waiters.push({ event, resolve, reject }));
    },
    async stop() {
      if (child.exitCode !== null) return;
      child.stdin!.end();
      child.kill('SIGTERM');
      const timer = setTimeout(() => child.kill('SIGKILL'), 10_000);
      await exited;
      clearTimeout(timer);
    },
  };
}

export interface PublishOptions {
  url: string;
  stream: string;
  count?: number;
  codec?: 'vp8' | 'h264';
  kbps?: number;
  audio?: boolean;
}

/** Starts a constant-bitrate publisher and waits until its streams are up. */
export async function publish(options: PublishOptions): Promise<LoadProcess> {
  const codec = options.codec ?? 'vp8';
  const proc = run([
    'publish',
    `-url=${options.url}`,
    `-stream=${options.stream}`,
    `-count=${options.count ?? 1}`,
    `-codec=${codec}`,
    `-file=${mediaFile(codec, options.kbps ?? 1500)}`,
    `-audio=${options.audio ?? true}`,
  ]);
  const published = await proc.next('published');
  if (Number(published.streams) !== (options.count ?? 1)) {
    await proc.stop();
    throw new Error(`publisher: ${published.failed} of ${options.count ?? 1} streams failed`);
  }
  return proc;
}

/** Starts a crowd of viewers (flags as `rtcload viewers`, e.g. { steps: '50,150', hold: '10s' }). */
export function viewers(flags: Record<string, string | number | boolean>, gomaxprocs = 1): LoadProcess {
  return run(
    ['viewers', ...Object.entries(flags).map(([key, value]) => `-${key}=${value}`)],
    // One core drives the crowd: the number the load generator is held to.
    { GOMAXPROCS: String(gomaxprocs) },
  );
}

/**
 * Pins every thread of `pid` to `cpus` (taskset). The viewers benchmark gives the mediasoup worker
 * a core of its own so that the load generator and the publisher, on the other, cannot steal its
 * time: on a 2-core machine that contention, not the server, decided the result.
 */
export function pin(pid: number, cpus: readonly number[]): void {
  execFileSync('taskset', ['--all-tasks', '--cpu-list', '--pid', cpus.join(','), String(pid)], {
    stdio: 'ignore',
  });
}

/** The cores the benchmark may pin to: the worker gets the last one, everything else the rest. */
export function pinningPlan(): { worker: number[]; rest: number[] } | undefined {
  if (process.env.BENCH_PIN === '0') return undefined;
  const cpus = os.availableParallelism();
  if (cpus < 2) return undefined;
  return { worker: [cpus - 1], rest: Array.from({ length: cpus - 1 }, (_, index) => index) };
}

/** utime + stime of a process, in seconds. */
export function cpuSeconds(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return (Number(fields[11]) + Number(fields[12])) / 100; // USER_HZ
}

/** Resident memory of a process, in MiB. */
export function rssMiB(pid: number): number {
  const match = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  return match ? Math.round((Number(match[1]) / 1024) * 10) / 10 : Number.NaN;
}

export function childPids(pid: number): number[] {
  const children: number[] = [];
  for (const task of readdirSync(`/proc/${pid}/task`)) {
    const text = readFileSync(`/proc/${pid}/task/${task}/children`, 'utf8').trim();
    if (text) children.push(...text.split(' ').map(Number));
  }
  return children;
}

/** The node process and its mediasoup worker processes. */
export function nodePids(nodePid: number): { node: number; workers: number[] } {
  return {
    node: nodePid,
    workers: childPids(nodePid).filter((pid) =>
      readFileSync(`/proc/${pid}/cmdline`, 'utf8').includes('mediasoup-worker'),
    ),
  };
}

/** CPU seconds of several processes, to be differenced over a window. */
export class CpuWindow {
  readonly #pids: Record<string, number>;
  readonly #start: Record<string, number>;
  readonly #t0 = process.hrtime.bigint();
  constructor(pids: Record<string, number>) {
    this.#pids = pids;
    this.#start = Object.fromEntries(Object.entries(pids).map(([name, pid]) => [name, cpuSeconds(pid)]));
  }
  /** Cores used per process since construction. */
  cores(): Record<string, number> & { wallSeconds: number } {
    const wall = Number(process.hrtime.bigint() - this.#t0) / 1e9;
    const out: Record<string, number> = { wallSeconds: Math.round(wall * 10) / 10 };
    for (const [name, pid] of Object.entries(this.#pids)) {
      out[name] = Math.round(((cpuSeconds(pid) - this.#start[name]!) / wall) * 1000) / 1000;
    }
    return out as Record<string, number> & { wallSeconds: number };
  }
}

export const loadavg = (): number[] => os.loadavg().map((value) => Math.round(value * 100) / 100);

/** p50/p95/p99 (or, below 20 samples, p50 and max only) of a sample, rounded. */
export function describe(values: readonly number[]): Record<string, number> {
  if (values.length === 0) return { n: 0 };
  const sorted = [...values].sort((a, b) => a - b);
  const rank = (p: number) =>
    Math.round(
      sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1))]! * 10,
    ) / 10;
  const max = Math.round(sorted.at(-1)! * 10) / 10;
  if (sorted.length < 20) return { n: sorted.length, p50: rank(50), max };
  if (sorted.length < 100) return { n: sorted.length, p50: rank(50), p95: rank(95), max };
  return { n: sorted.length, p50: rank(50), p95: rank(95), p99: rank(99), max };
}
