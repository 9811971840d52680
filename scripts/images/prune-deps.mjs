// Narrows ./package.json to the npm packages one program imports (packages.txt, written by
// closure.mjs), so that `npm prune --omit=dev` then removes every other package and whatever only
// they needed (used by the Dockerfile's deps-* stages, after `npm ci --omit=dev`):
//
//   node prune-deps.mjs <packages.txt>
//
// Fails if the program imports a package that is not a direct dependency of package.json (it
// would only work by accident, through another package's hoisted dependency).
import { readFileSync, writeFileSync } from 'node:fs';

const listFile = process.argv[2];
if (!listFile) {
  console.error('usage: prune-deps.mjs <packages.txt>');
  process.exit(2);
}
const needed = readFileSync(listFile, 'utf8').split('\n').filter(Boolean);
const manifest = JSON.parse(readFileSync('package.json', 'utf8'));
const dependencies = manifest.dependencies ?? {};
const missing = needed.filter((name) => !(name in dependencies));
if (missing.length > 0) {
  console.error(`prune-deps.mjs: imported but not in package.json dependencies: ${missing.join(', ')}`);
  process.exit(1);
}
const dropped = Object.keys(dependencies).filter((name) => !needed.includes(name));
manifest.dependencies = Object.fromEntries(needed.map((name) => [name, dependencies[name]]));
delete manifest.devDependencies;
writeFileSync('package.json', `${JSON.stringify(manifest, null, 2)}\n`);
console.log(`kept: ${needed.join(' ')}; dropped: ${dropped.join(' ') || '(none)'}`);
