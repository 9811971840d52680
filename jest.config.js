/** Jest runs the TypeScript sources as native ESM (node --experimental-vm-modules), transpiled by swc. */
export default {
  testEnvironment: 'node',
  extensionsToTreatAsEsm: ['.ts'],
  transform: {
    '^.+\\.ts$': [
      '@swc/jest',
      {
        jsc: { parser: { syntax: 'typescript' }, target: 'es2022' },
        module: { type: 'es6' },
      },
    ],
  },
  moduleNameMapper: { '^(\\.{1,2}/.*)\\.js$': '$1' },
  testMatch: ['<rootDir>/test/**/*.test.ts'],
  // Suites on built container images and on the local Kubernetes cluster need Docker, root and
  // minutes of setup: `npm run test:images` / `npm run test:cluster` run them (RTCCDN_TEST_SLOW=1).
  testPathIgnorePatterns:
    process.env.RTCCDN_TEST_SLOW === '1'
      ? ['/node_modules/', '<rootDir>/.stryker-tmp']
      : ['/node_modules/', '<rootDir>/.stryker-tmp', '<rootDir>/test/images/', '<rootDir>/test/cluster-k8s/'],
  // Stryker's sandboxes (npm run test:mutation) are copies of the project: not ours to load.
  modulePathIgnorePatterns: ['<rootDir>/.stryker-tmp'],
  testTimeout: 60_000,
  // WebRTC peers and mediasoup workers are real processes/threads: run test files one at a time
  // on this 2-core budget so timing-sensitive media tests are not starved.
  maxWorkers: 1,
  // @roamhq/wrtc (libwebrtc in Node) keeps native threads alive after every peer is closed (an
  // RTCAudioSource never lets the loop drain) and can crash in its static destructors when the
  // process ends naturally (SIGSEGV at exit, status 139). Exiting explicitly avoids both. Our own
  // resources are checked by the tests themselves (mediasoup router/transport counts, processes).
  forceExit: true,
};
