/**
 * The operator image carries the operator's compiled JavaScript and the npm packages it imports,
 * and neither mediasoup nor FFmpeg. Needs `npm run images`; run with `npm run test:images`.
 */
import { beforeAll, describe, expect, it } from '@jest/globals';
import { docker, dockerOk, requireImage } from '../../scripts/harness/docker.js';

const IMAGE = process.env.RTCCDN_OPERATOR_IMAGE ?? 'rtccdn/operator:latest';

describe(`${IMAGE}`, () => {
  beforeAll(async () => {
    await requireImage(IMAGE);
  });

  it('runs as 1000:1000 under tini with the compiled operator as its command', async () => {
    const config = JSON.parse(await dockerOk(['image', 'inspect', '-f', '{{json .Config}}', IMAGE]));
    expect(config.User).toBe('1000:1000');
    expect(config.Entrypoint).toEqual(['/usr/bin/tini', '--']);
    expect(config.Cmd).toEqual(['node', 'dist/operator/src/main.js']);
  });

  it('has no mediasoup, no FFmpeg, no TypeScript and no media-node module the operator does not import', async () => {
    const listing = await dockerOk([
      'run',
      '--rm',
      '--network',
      'none',
      '--entrypoint',
      'sh',
      IMAGE,
      '-c',
      'ls node_modules; echo ---; command -v ffmpeg || echo no-ffmpeg; echo ---; find dist -type f | sort',
    ]);
    const [packages, ffmpeg, files] = listing.split('\n---\n');
    expect(packages!.split('\n')).not.toContain('mediasoup');
    expect(packages!.split('\n')).not.toContain('tsx');
    expect(packages!.split('\n')).toContain('@kubernetes');
    expect(ffmpeg!.trim()).toBe('no-ffmpeg');
    const dist = files!.split('\n');
    expect(dist).toContain('dist/operator/src/main.js');
    expect(dist).toContain('dist/media-node/contract/src/acl/AclStore.js');
    expect(dist.filter((file) => !file.endsWith('.js'))).toEqual([]);
    // Only the media node's contract is in the operator's closure, none of its code.
    expect(dist.filter((file) => file.startsWith('dist/media-node/src/'))).toEqual([]);
  });

  it('starts and reports a bad configuration in one line (exit 2), a missing kubeconfig with exit 1', async () => {
    const bad = await docker(['run', '--rm', '--network', 'none', '-e', 'WORKERS=many', IMAGE]);
    expect(bad.code).toBe(2);
    expect(bad.stderr.trim()).toMatch(/^rtccdn operator: invalid configuration: WORKERS /);
    const noCluster = await docker([
      'run',
      '--rm',
      '--network',
      'none',
      '-e',
      'LEADER_ELECTION=false',
      '-e',
      'KUBECONFIG=/nonexistent',
      IMAGE,
    ]);
    expect(noCluster.code).toBe(1);
    expect(noCluster.stderr).toMatch(/cannot load the Kubernetes configuration/);
  });
});
