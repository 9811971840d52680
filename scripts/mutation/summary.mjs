/**
 * Prints the mutation score of each module from Stryker's JSON report
 * (reports/mutation/mutation.json), after `stryker run` (npm run test:mutation).
 *
 * Score = (killed + timed out) / (killed + timed out + survived + no coverage). Ignored mutants
 * (logging only, see ignore-logging.mjs) do not count; compile and runtime errors are listed.
 */
import { readFileSync } from 'node:fs';

const MODULES = [
  ['media node ACL (media-node/src/acl/)', (file) => file.startsWith('media-node/src/acl/')],
  ['ACL contract (media-node/contract/src/acl/)', (file) => file.startsWith('media-node/contract/src/acl/')],
  [
    'internal API (contract/src/internal-api/, src/http/internal.ts)',
    (file) =>
      file.startsWith('media-node/contract/src/internal-api/') || file === 'media-node/src/http/internal.ts',
  ],
  [
    'HTTP layer (src/http/ but internal.ts)',
    (file) => file.startsWith('media-node/src/http/') && file !== 'media-node/src/http/internal.ts',
  ],
  [
    'StreamACL controller (operator/src/controllers/streamacl/)',
    (file) => file.startsWith('operator/src/controllers/streamacl/'),
  ],
];

const path = process.argv[2] ?? 'reports/mutation/mutation.json';
const report = JSON.parse(readFileSync(path, 'utf8'));

const count = (mutants) => {
  const by = {};
  for (const mutant of mutants) by[mutant.status] = (by[mutant.status] ?? 0) + 1;
  const detected = (by.Killed ?? 0) + (by.Timeout ?? 0);
  const undetected = (by.Survived ?? 0) + (by.NoCoverage ?? 0);
  return {
    detected,
    undetected,
    survived: by.Survived ?? 0,
    noCoverage: by.NoCoverage ?? 0,
    ignored: by.Ignored ?? 0,
    errors: (by.CompileError ?? 0) + (by.RuntimeError ?? 0),
    score: detected + undetected === 0 ? undefined : (100 * detected) / (detected + undetected),
  };
};

const rows = [];
const all = [];
for (const [name, matches] of MODULES) {
  const mutants = Object.entries(report.files)
    .filter(([file]) => matches(file))
    .flatMap(([, file]) => file.mutants);
  all.push(...mutants);
  rows.push([name, count(mutants)]);
}
rows.push(['all', count(all)]);

const header = ['module', 'score', 'killed', 'survived', 'no cov', 'ignored', 'errors'];
const lines = rows.map(([name, c]) => [
  name,
  c.score === undefined ? 'not run' : `${c.score.toFixed(2)}%`,
  String(c.detected),
  String(c.survived),
  String(c.noCoverage),
  String(c.ignored),
  String(c.errors),
]);
const widths = header.map((title, i) => Math.max(title.length, ...lines.map((line) => line[i].length)));
const format = (cells) =>
  cells.map((cell, i) => (i === 0 ? cell.padEnd(widths[i]) : cell.padStart(widths[i]))).join(' | ');
console.log(`\nMutation score per module (${path}):`);
console.log(format(header));
console.log(widths.map((width) => '-'.repeat(width)).join('-|-'));
for (const line of lines) console.log(format(line));

// Per file, and every mutant the tests did not notice (to kill with a test, or to explain).
const fileRows = Object.entries(report.files)
  .map(([file, { mutants }]) => [file, count(mutants)])
  .filter(([, c]) => c.detected + c.undetected > 0)
  .sort(([a], [b]) => a.localeCompare(b));
console.log('\nPer file:');
for (const [file, c] of fileRows) {
  console.log(
    `  ${file}: ${c.score.toFixed(2)}% (${c.detected} detected, ${c.survived} survived, ${c.noCoverage} no coverage)`,
  );
}
const undetected = Object.entries(report.files).flatMap(([file, { mutants }]) =>
  mutants
    .filter((mutant) => mutant.status === 'Survived' || mutant.status === 'NoCoverage')
    .map((mutant) => ({ file, ...mutant })),
);
if (undetected.length > 0) {
  console.log('\nNot detected:');
  for (const mutant of undetected) {
    const { line, column } = mutant.location.start;
    const replacement = (mutant.replacement ?? '').replace(/\s+/g, ' ').slice(0, 80);
    console.log(`  ${mutant.file}:${line}:${column} ${mutant.status} ${mutant.mutatorName}: ${replacement}`);
  }
}
