/**
 * Writes the CustomResourceDefinitions that scripts/crds/crdgen.ts generates from
 * operator/src/api/v1alpha1.ts to crds/, and the same files to helm/rtccdn/files/crds/ (a chart
 * can only read files inside itself; its templates/crds.yaml renders them with an enable flag
 * and helm.sh/resource-policy: keep). The committed files name this script in their header.
 *
 *   node --import tsx scripts/gen-crds.ts           # (re)generate both
 *   node --import tsx scripts/gen-crds.ts --check   # exit 1 if a committed file is stale
 */
import { existsSync } from 'node:fs';
import { mkdir, readdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { GENERATED_HEADER, renderCrdFiles } from './crds/crdgen.js';

const CRDS_DIR = fileURLToPath(new URL('../crds/', import.meta.url));
const HELM_CRDS_DIR = fileURLToPath(new URL('../helm/rtccdn/files/crds/', import.meta.url));
/** Where the generated files go, with the name shown in messages. */
const OUTPUTS = [
  { dir: CRDS_DIR, shown: 'crds/' },
  { dir: HELM_CRDS_DIR, shown: 'helm/rtccdn/files/crds/' },
];
const GENERATED_SUFFIX = '.rtccdn.io.yaml';

/** A short line diff: the changed block between the common prefix and suffix, with context. */
export function lineDiff(expected: string, actual: string, context = 3): string {
  const a = expected.split('\n');
  const b = actual.split('\n');
  let start = 0;
  while (start < a.length && start < b.length && a[start] === b[start]) start++;
  let endA = a.length;
  let endB = b.length;
  while (endA > start && endB > start && a[endA - 1] === b[endB - 1]) {
    endA--;
    endB--;
  }
  const from = Math.max(0, start - context);
  const lines = [`@@ line ${start + 1} @@`];
  for (let i = from; i < start; i++) lines.push(`  ${a[i]}`);
  const limit = 40;
  const removed = a.slice(start, endA);
  const added = b.slice(start, endB);
  for (const line of removed.slice(0, limit)) lines.push(`- ${line}`);
  if (removed.length > limit) lines.push(`  … ${removed.length - limit} more removed lines`);
  for (const line of added.slice(0, limit)) lines.push(`+ ${line}`);
  if (added.length > limit) lines.push(`  … ${added.length - limit} more added lines`);
  for (let i = endA; i < Math.min(a.length, endA + context); i++) lines.push(`  ${a[i]}`);
  return lines.join('\n');
}

async function main(argv: string[]): Promise<number> {
  const unknown = argv.filter((arg) => arg !== '--check');
  if (unknown.length > 0) {
    console.error(`usage: node --import tsx scripts/gen-crds.ts [--check]  (unknown: ${unknown.join(' ')})`);
    return 2;
  }
  const check = argv.includes('--check');
  const files = renderCrdFiles();

  if (!check) {
    for (const { dir, shown } of OUTPUTS) {
      await mkdir(dir, { recursive: true });
      for (const { file, content } of files) {
        await writeFile(join(dir, file), content);
        console.log(`wrote ${shown}${file}`);
      }
    }
    return 0;
  }

  const problems: string[] = [];
  for (const { dir, shown } of OUTPUTS) {
    for (const { file, content } of files) {
      const path = join(dir, file);
      if (!existsSync(path)) {
        problems.push(`${shown}${file} is missing`);
        continue;
      }
      const committed = await readFile(path, 'utf8');
      if (committed !== content) {
        problems.push(
          `${shown}${file} differs from the generated CRD (- committed, + generated):\n${lineDiff(committed, content)}`,
        );
      }
    }
    // A generated file whose resource no longer exists would still be applied by `kubectl apply -f crds/`.
    const expected = new Set(files.map(({ file }) => file));
    for (const file of existsSync(dir) ? await readdir(dir) : []) {
      if (!file.endsWith(GENERATED_SUFFIX) || expected.has(file)) continue;
      const content = await readFile(join(dir, file), 'utf8');
      if (content.startsWith(GENERATED_HEADER.split('\n')[0]!))
        problems.push(`${shown}${file} is no longer generated: delete it`);
    }
  }
  if (problems.length > 0) {
    console.error(problems.join('\n\n'));
    console.error(
      '\nThe CRDs are out of date: run `node --import tsx scripts/gen-crds.ts` and commit crds/ and helm/rtccdn/files/crds/.',
    );
    return 1;
  }
  console.log(`crds/ and helm/rtccdn/files/crds/ are up to date (${files.length} CRDs)`);
  return 0;
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  main(process.argv.slice(2)).then(
    (code) => {
      process.exitCode = code;
    },
    (error: unknown) => {
      console.error(error instanceof Error ? error.message : error);
      process.exitCode = 1;
    },
  );
}
