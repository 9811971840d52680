// `npm run deps:check`: what keeping rtccdn current needs, from the npm registry.
//
//   - Node.js: the pinned runtime (scripts/setup-node.sh) against the newest 24.x build there;
//   - runtime dependencies (package.json "dependencies") with a newer release (npm outdated);
//   - known advisories affecting them (npm audit --omit=dev).
//
// Exit status: 0 all current and no advisory; 1 something to update; 2 a check could not run
// (each says why on one line). Dev dependencies are not listed: they do not ship.
import { execFile } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { promisify } from 'node:util';

const run = promisify(execFile);
const root = new URL('..', import.meta.url);
const say = (line) => process.stdout.write(`[deps:check] ${line}\n`);
let status = 0;
const raise = (code) => {
  status = Math.max(status, code);
};

/** Runs npm with JSON output; npm exits 1 when it has findings, which is not a failure here. */
async function npmJson(args) {
  try {
    const { stdout } = await run('npm', [...args, '--json'], { cwd: root, maxBuffer: 64 << 20 });
    return JSON.parse(stdout || '{}');
  } catch (error) {
    const parsed = (() => {
      try {
        return JSON.parse(error.stdout || '');
      } catch {
        return undefined;
      }
    })();
    if (parsed && !parsed.error) return parsed;
    const reason =
      parsed?.error?.summary ||
      parsed?.message ||
      String(error.stderr || error.message)
        .trim()
        .split('\n')
        .at(-1);
    throw new Error(`npm ${args.join(' ')}: ${reason}`);
  }
}

// --- Node.js ---------------------------------------------------------------------------------
try {
  const script = readFileSync(new URL('scripts/setup-node.sh', root), 'utf8');
  const pinned = /^readonly NODE_VERSION=(\S+)$/m.exec(script)?.[1];
  const pkg = /^readonly NODE_PACKAGE=(\S+)$/m.exec(script)?.[1];
  const major = pinned?.split('.')[0];
  if (!pinned || !pkg) throw new Error('cannot read NODE_VERSION / NODE_PACKAGE from scripts/setup-node.sh');
  const versions = [await npmJson(['view', `${pkg}@${major}`, 'version'])].flat();
  const newest = versions.at(-1);
  if (newest === pinned) say(`Node.js ${pinned} (${pkg}): newest ${major}.x — current`);
  else {
    say(`Node.js ${pinned} (${pkg}): ${newest} is out — update NODE_VERSION and NODE_INTEGRITY`);
    raise(1);
  }
} catch (error) {
  say(`Node.js: could not be checked: ${error.message}`);
  raise(2);
}

// --- outdated runtime dependencies -----------------------------------------------------------
const { dependencies = {} } = JSON.parse(readFileSync(new URL('package.json', root), 'utf8'));
try {
  const outdated = await npmJson(['outdated']);
  const rows = Object.entries(outdated).filter(([name]) => name in dependencies);
  say(`runtime dependencies: ${Object.keys(dependencies).length}, outdated: ${rows.length}`);
  for (const [name, info] of rows) {
    say(`  ${name}  ${info.current ?? 'missing'} → ${info.latest} (package.json pins ${dependencies[name]})`);
  }
  if (rows.length > 0) raise(1);
} catch (error) {
  say(`outdated runtime dependencies: could not be checked: ${error.message}`);
  raise(2);
}

// --- advisories ------------------------------------------------------------------------------
try {
  const audit = await npmJson(['audit', '--omit=dev']);
  const vulnerabilities = Object.values(audit.vulnerabilities ?? {});
  say(`advisories (npm audit --omit=dev): ${vulnerabilities.length}`);
  for (const vulnerability of vulnerabilities) {
    const via = vulnerability.via
      .map((item) => (typeof item === 'string' ? `via ${item}` : `${item.title} ${item.url ?? ''}`.trim()))
      .join('; ');
    say(`  ${vulnerability.name} (${vulnerability.severity}, ${vulnerability.range}): ${via}`);
  }
  if (vulnerabilities.length > 0) raise(1);
} catch (error) {
  say(`advisories: could not be checked: ${error.message}`);
  raise(2);
}

process.exit(status);
