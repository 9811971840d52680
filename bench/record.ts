import { execFileSync } from 'node:child_process';
import { mkdirSync, renameSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import { fileURLToPath } from 'node:url';

/**
 * One results file per `npm run bench`: bench/results/<UTC start, e.g. 2026-12-01T19-15-03Z>.json,
 * holding what is needed to judge the numbers — when, which code (commit, dirty tree), which
 * machine and how busy it was, which knobs — next to each scenario's results. The file is
 * rewritten after every scenario, so an interrupted run leaves what it measured, marked
 * `complete: false`. See bench/README.md.
 */

const RESULTS_DIR = new URL('./results/', import.meta.url);
const REPO_ROOT = fileURLToPath(new URL('../', import.meta.url));

export interface GitState {
  commit: string;
  branch: string;
  /** Uncommitted changes (tracked or untracked, bench/results/ aside) when the run started. */
  dirty: boolean;
  changes: string[];
}

export interface Machine {
  cpus: number;
  cpuModel: string | undefined;
  memoryGiB: number;
  os: string;
  node: string;
}

/** os.loadavg(): 1, 5 and 15 minute load averages, two decimals. */
export type LoadAverage = [number, number, number];

export interface ScenarioRecord {
  startedAt: string;
  finishedAt: string;
  loadavg: { start: LoadAverage; end: LoadAverage };
  result: object;
}

export interface RunFile {
  startedAt: string;
  finishedAt: string | null;
  /** False until every selected scenario has run (an interrupted run keeps what it measured). */
  complete: boolean;
  git: GitState;
  machine: Machine;
  loadavg: { start: LoadAverage; end: LoadAverage | null };
  /** BENCH_* variables as given, and the value each knob took (defaults included). */
  settings: { env: Record<string, string>; effective: object };
  scenarios: Record<string, ScenarioRecord>;
}

/** Output without its final newline (leading spaces matter: `git status --porcelain`). */
function git(args: string[]): string {
  return execFileSync('git', args, { cwd: REPO_ROOT, encoding: 'utf8' }).trimEnd();
}

export function gitState(): GitState {
  const changes = git(['status', '--porcelain', '--untracked-files=all'])
    .split('\n')
    .filter((line) => line !== '' && !line.slice(3).startsWith('bench/results/'));
  return {
    commit: git(['rev-parse', 'HEAD']),
    branch: git(['rev-parse', '--abbrev-ref', 'HEAD']),
    dirty: changes.length > 0,
    changes,
  };
}

export function machine(): Machine {
  return {
    cpus: os.cpus().length,
    cpuModel: os.cpus()[0]?.model,
    memoryGiB: Math.round(os.totalmem() / 2 ** 30),
    os: `${os.type()} ${os.release()} ${os.arch()}`,
    node: process.version,
  };
}

export function loadAverage(): LoadAverage {
  return os.loadavg().map((value) => Math.round(value * 100) / 100) as LoadAverage;
}

/** BENCH_* variables of this process, as given. */
export function benchEnv(): Record<string, string> {
  return Object.fromEntries(
    Object.entries(process.env)
      .filter((entry): entry is [string, string] => entry[0].startsWith('BENCH_') && entry[1] !== undefined)
      .sort(([a], [b]) => a.localeCompare(b)),
  );
}

/** 2026-12-01T19:15:03.123Z → 2026-12-01T19-15-03Z: sorts by date, no ':' in file names. */
export function fileNameFor(date: Date): string {
  return `${date.toISOString().slice(0, 19).replaceAll(':', '-')}Z.json`;
}

export class BenchRun {
  readonly path: string;
  readonly #file: RunFile;
  /** Scenarios run back to back: one ends where the next starts. */
  #mark: { at: string; loadavg: LoadAverage };

  constructor(effectiveSettings: object) {
    const started = new Date();
    mkdirSync(RESULTS_DIR, { recursive: true });
    this.path = fileURLToPath(new URL(fileNameFor(started), RESULTS_DIR));
    const loadavg = loadAverage();
    this.#mark = { at: started.toISOString(), loadavg };
    this.#file = {
      startedAt: started.toISOString(),
      finishedAt: null,
      complete: false,
      git: gitState(),
      machine: machine(),
      loadavg: { start: loadavg, end: null },
      settings: { env: benchEnv(), effective: effectiveSettings },
      scenarios: {},
    };
    this.#save();
  }

  /** The repository-relative name printed and cited: bench/results/<date>.json. */
  get name(): string {
    return `bench/results/${fileNameFor(new Date(this.#file.startedAt))}`;
  }

  get file(): Readonly<RunFile> {
    return this.#file;
  }

  add(scenario: string, result: object): void {
    const now = { at: new Date().toISOString(), loadavg: loadAverage() };
    this.#file.scenarios[scenario] = {
      startedAt: this.#mark.at,
      finishedAt: now.at,
      loadavg: { start: this.#mark.loadavg, end: now.loadavg },
      result,
    };
    this.#mark = now;
    this.#save();
  }

  finish(): void {
    this.#file.finishedAt = new Date().toISOString();
    this.#file.loadavg.end = loadAverage();
    this.#file.complete = true;
    this.#save();
  }

  /** Written whole, then renamed: a reader never sees half a file. */
  #save(): void {
    const temporary = `${this.path}.tmp`;
    writeFileSync(temporary, `${JSON.stringify(this.#file, null, 2)}\n`);
    renameSync(temporary, this.path);
  }
}
