/**
 * scripts/cluster/lib.sh, the failure handling every cluster and image script shares: a failure
 * ends the script with one last stderr line that names the step and, for a failed command, the
 * command; ON_FAILURE runs first. Real bash, real commands.
 */
import { spawnSync } from 'node:child_process';
import { describe, expect, it } from '@jest/globals';

const LIB = new URL('../../scripts/cluster/lib.sh', import.meta.url).pathname;

/** Runs `body` after sourcing lib.sh as the scripts do; the exit code and stderr's lines. */
const runScript = (body: string) => {
  const script = `set -Eeuo pipefail\nLOG_TAG=t\nsource ${JSON.stringify(LIB)}\n${body}\n`;
  const result = spawnSync('bash', ['-c', script], { encoding: 'utf8' });
  return { code: result.status, lines: result.stderr.trim().split('\n') };
};

describe('cluster scripts: lib.sh failures', () => {
  it('name the step and the command that failed, after the ON_FAILURE handler ran', () => {
    const { code, lines } = runScript(
      [
        'cleanup() { log "cleaning up"; }',
        'ON_FAILURE=cleanup',
        'STEP="create the thing"',
        'true',
        'ls /nonexistent-rtccdn-path >/dev/null 2>&1',
        'log "never reached"',
      ].join('\n'),
    );
    expect(code).toBe(2);
    expect(lines).toEqual([
      '[t] cleaning up',
      '[t] ERROR: step "create the thing" failed (exit 2) at: ls /nonexistent-rtccdn-path > /dev/null 2>&1',
    ]);
  });

  it('report a failure inside a command substitution once, from the main shell', () => {
    const { code, lines } = runScript('STEP="read the thing"\nvalue="$(false)"\necho "$value"');
    expect(code).toBe(1);
    // The main shell names its own command, the assignment: the line is the substitution's only.
    expect(lines).toEqual(['[t] ERROR: step "read the thing" failed (exit 1) at: value="$(false)"']);
  });

  it('die: exit 1 with its own message instead of the command', () => {
    const { code, lines } = runScript('STEP="check the thing"\ndie "the thing is missing"');
    expect(code).toBe(1);
    expect(lines).toEqual(['[t] ERROR: step "check the thing": the thing is missing']);
  });

  it('a script that succeeds prints nothing', () => {
    expect(runScript('STEP="fine"\ntrue')).toEqual({ code: 0, lines: [''] });
  });
});
