import { spawnSync } from 'node:child_process';
import { copyFileSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from '@jest/globals';
import * as mediasoup from 'mediasoup';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const CHECK = join(ROOT, 'scripts/check-node.mjs');
const pkg = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as {
  engines: { node: string };
  dependencies: Record<string, string>;
};
const major = (version: string) => Number(version.replace(/^v/, '').split('.')[0]);

describe('runtime', () => {
  it('runs on the Node.js that package.json engines asks for (the one scripts/setup.sh installs)', () => {
    process.stdout.write(
      `runtime: Node.js ${process.version} (${process.execPath}), mediasoup ${mediasoup.version}\n`,
    );
    expect(pkg.engines.node).toBe('>=24');
    expect(major(process.version)).toBeGreaterThanOrEqual(24);
    expect(mediasoup.version).toBe(pkg.dependencies.mediasoup);
  });

  it('starts child processes (media nodes, operators) on the same Node.js', () => {
    const result = spawnSync(process.execPath, ['--import', CHECK, '-p', 'process.version'], {
      encoding: 'utf8',
    });
    expect(result.stderr).toBe('');
    expect(result.stdout.trim()).toBe(process.version);
  });

  it('check-node stops an older Node.js with one line naming the requirement', () => {
    // The same script next to a package.json asking for more than any Node.js there is.
    const dir = mkdtempSync(join(tmpdir(), 'rtccdn-check-node-'));
    try {
      mkdirSync(join(dir, 'scripts'));
      copyFileSync(CHECK, join(dir, 'scripts/check-node.mjs'));
      writeFileSync(join(dir, 'package.json'), JSON.stringify({ engines: { node: '>=999' } }));
      const result = spawnSync(
        process.execPath,
        ['--import', join(dir, 'scripts/check-node.mjs'), '-e', ''],
        {
          encoding: 'utf8',
        },
      );
      expect(result.status).toBe(1);
      const lines = result.stderr.trim().split('\n');
      expect(lines).toHaveLength(1);
      expect(lines[0]).toBe(
        `rtccdn: Node.js >= 999 is required, this is ${process.version} (${process.execPath}); run scripts/setup.sh (npm start / npm test do) to install it`,
      );
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
