/**
 * The Docker CLI for tests of the built images (`npm run images`; the engine is started by
 * scripts/docker.sh). Debian's CLI matches the engine scripts/docker.sh installs.
 */
import { existsSync } from 'node:fs';
import { type CommandResult, type RunOptions, runCommand } from './kube-testenv.js';

export const DOCKER = existsSync('/usr/bin/docker') ? '/usr/bin/docker' : 'docker';

/** Runs docker; never throws for a non-zero exit (read `code`). */
export function docker(args: string[], options?: RunOptions): Promise<CommandResult> {
  return runCommand(DOCKER, args, options);
}

/** Runs docker and returns its trimmed stdout; throws with stderr for a non-zero exit. */
export async function dockerOk(args: string[], options?: RunOptions): Promise<string> {
  const result = await docker(args, options);
  if (result.code !== 0) {
    throw new Error(`docker ${args.join(' ')} exited ${result.code}: ${result.stderr.trim().slice(-800)}`);
  }
  return result.stdout.trim();
}

/** Fails with a clear message when the image was not built (`npm run images`). */
export async function requireImage(image: string): Promise<void> {
  const result = await docker(['image', 'inspect', '-f', '{{.Id}}', image]);
  if (result.code !== 0) {
    throw new Error(`image ${image} is missing: build it with \`npm run images\` (${result.stderr.trim()})`);
  }
}
