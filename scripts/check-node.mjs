// Preloaded by the npm scripts (`node --import ./scripts/check-node.mjs ...`): stops with one
// line when the running Node.js is older than package.json's engines.node, before anything else
// is loaded (on an older Node.js, dependencies fail with errors that do not say why).
// Plain JavaScript, no dependencies: it must run on any Node.js.
import { readFileSync } from 'node:fs';

/** The minimum major version of an engines range of the form ">=N" (the only form used). */
export function minimumMajor(range) {
  const match = /^>=\s*(\d+)(?:\.0)*$/.exec(String(range).trim());
  if (!match) throw new Error(`package.json engines.node must be ">=N", not ${JSON.stringify(range)}`);
  return Number(match[1]);
}

const { engines } = JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8'));
const minimum = minimumMajor(engines.node);
const major = Number(process.versions.node.split('.')[0]);
if (major < minimum) {
  process.stderr.write(
    `rtccdn: Node.js >= ${minimum} is required, this is ${process.version} (${process.execPath}); run scripts/setup.sh (npm start / npm test do) to install it\n`,
  );
  process.exit(1);
}
