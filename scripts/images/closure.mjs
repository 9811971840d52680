// Computes what one program of the image needs from the compiled JavaScript, by following its
// imports from the entry point (used by the Dockerfile's `compile` stage):
//
//   node scripts/images/closure.mjs <dist dir> <entry, relative to dist> <out dir> [--forbid pkg]...
//
// writes <out dir>/app/dist/... (every module reachable from the entry, nothing else),
// <out dir>/modules.txt (those modules, relative to dist) and <out dir>/packages.txt (the npm
// packages they import, one per line, sorted). Fails if a relative import does not exist or a
// forbidden package (e.g. mediasoup for the operator) is reachable, naming the importing file.
// Specifiers are read with es-module-lexer (static imports, re-exports, and dynamic imports of a
// string literal; a dynamic import of anything else fails, since its target cannot be known).
import { cpSync, existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { builtinModules } from 'node:module';
import { dirname, join, relative, resolve } from 'node:path';
import { init, parse } from 'es-module-lexer';

const [distArg, entryArg, outArg, ...rest] = process.argv.slice(2);
if (!distArg || !entryArg || !outArg) {
  console.error('usage: closure.mjs <dist dir> <entry> <out dir> [--forbid pkg]...');
  process.exit(2);
}
const forbidden = new Set();
for (let i = 0; i < rest.length; i += 2) {
  if (rest[i] !== '--forbid' || !rest[i + 1]) {
    console.error(`closure.mjs: unexpected argument ${rest[i]}`);
    process.exit(2);
  }
  forbidden.add(rest[i + 1]);
}

const dist = resolve(distArg);
const builtins = new Set(builtinModules);
const packageOf = (specifier) => {
  const parts = specifier.split('/');
  return specifier.startsWith('@') ? parts.slice(0, 2).join('/') : parts[0];
};

await init;
const modules = new Set();
const packages = new Map(); // package -> first importer
const queue = [resolve(dist, entryArg)];
while (queue.length > 0) {
  const file = queue.pop();
  const rel = relative(dist, file);
  if (modules.has(rel)) continue;
  if (rel.startsWith('..') || !existsSync(file)) {
    throw new Error(`closure.mjs: ${rel} is imported but is not a compiled module under ${dist}`);
  }
  modules.add(rel);
  const [imports] = parse(readFileSync(file, 'utf8'), rel);
  for (const { n: specifier, d: dynamic } of imports) {
    if (specifier === undefined) {
      // import.meta (d === -2) names no module; an import() of a computed specifier cannot be followed.
      if (dynamic === -2) continue;
      throw new Error(`closure.mjs: ${rel} imports a computed specifier, which cannot be followed`);
    }
    if (specifier.startsWith('.') || specifier.startsWith('/')) {
      queue.push(resolve(dirname(file), specifier));
    } else if (specifier.startsWith('node:') || builtins.has(specifier)) {
      // Node.js built-in
    } else {
      const name = packageOf(specifier);
      if (forbidden.has(name)) {
        throw new Error(`closure.mjs: ${rel} imports ${specifier}, which ${entryArg} must not need`);
      }
      if (!packages.has(name)) packages.set(name, rel);
    }
  }
}

const out = resolve(outArg);
for (const rel of modules) {
  mkdirSync(dirname(join(out, 'app/dist', rel)), { recursive: true });
  cpSync(join(dist, rel), join(out, 'app/dist', rel));
}
const sorted = (values) => [...values].sort();
writeFileSync(join(out, 'modules.txt'), `${sorted(modules).join('\n')}\n`);
writeFileSync(join(out, 'packages.txt'), `${sorted(packages.keys()).join('\n')}\n`);
console.log(
  `${entryArg}: ${modules.size} modules, packages: ${sorted(packages.keys()).join(' ') || '(none)'}`,
);
