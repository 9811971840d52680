/**
 * Mutation testing (StrykerJS, jest runner): `npm run test:mutation`. See docs/testing.md for
 * what is mutated, which tests run, how long it takes and the current scores.
 *
 * Each mutant runs only the tests that cover it (coverageAnalysis: perTest), in the jest
 * processes Stryker starts, with the project's own jest config (swc, native ESM). Only tests
 * that run the mutated code in the jest process can kill a mutant: suites that start media
 * nodes as processes of their own are not listed (Stryker cannot see what they cover).
 */

/** The modules where a silent bug costs money or trust (keep in sync with scripts/mutation/summary.mjs). */
const MUTATE = [
  'media-node/src/acl/**/*.ts',
  'media-node/contract/src/acl/**/*.ts',
  'media-node/contract/src/internal-api/**/*.ts',
  // The whole HTTP layer (issue 17): internal port, WHIP/WHEP, ACL API, server, health/ops, TLS.
  'media-node/src/http/**/*.ts',
  'operator/src/controllers/streamacl/**/*.ts',
];

/**
 * The tests that run against them: fast unit tests (the media node's HTTP layer runs in-process on
 * a fake node, test/unit/support/fake-node.ts), and one real-component suite that is cheap
 * (a redis-server of its own, ~7 s for the file) and the only one that runs RedisAclStore in-process.
 */
const TESTS = [
  'test/unit/acl.test.ts',
  'test/unit/acl-contract.test.ts',
  'test/unit/acl-memory-store.test.ts',
  'test/unit/acl-cache.test.ts',
  'test/unit/stream-access.test.ts',
  'test/unit/internal-api.test.ts',
  'test/unit/internal-client.test.ts',
  'test/unit/http-internal.test.ts',
  'test/unit/http-public.test.ts',
  'test/unit/http-tls.test.ts',
  'test/unit/http-hls.test.ts',
  'test/unit/operator/streamacl-*.test.ts',
  'test/acl/acl-store.test.ts',
];

export default {
  testRunner: 'jest',
  // The project's jest runs TypeScript as native ESM (package.json "test").
  testRunnerNodeArgs: ['--experimental-vm-modules', '--no-warnings=ExperimentalWarning'],
  coverageAnalysis: 'perTest',
  mutate: MUTATE,
  jest: {
    configFile: 'jest.config.js',
    // A mutant's run loads only the test files that import its file (then runs only the tests
    // that cover it): loading every test file for each mutant would cost more than the tests.
    enableFindRelatedTests: true,
    config: { testMatch: TESTS.map((glob) => `<rootDir>/${glob}`) },
  },
  plugins: ['@stryker-mutator/jest-runner', './scripts/mutation/ignore-logging.mjs'],
  ignorers: ['logging'],
  // TypeScript 7 has no JavaScript API: Stryker must not rewrite tsconfig.json (it has no
  // `extends`/`references` to rewrite anyway), and swc does not type-check (no @ts-nocheck needed).
  tsconfigFile: 'stryker-does-not-rewrite-tsconfig.json',
  disableTypeChecks: false,
  // Two cores, shared: one jest process per core.
  concurrency: 2,
  // A mutant that makes a covering test run this much longer than it did unmutated is a timeout
  // (killed: e.g. an infinite loop). Generous, because the machine is shared.
  timeoutMS: 10_000,
  timeoutFactor: 2,
  reporters: ['clear-text', 'progress', 'html', 'json'],
  htmlReporter: { fileName: 'reports/mutation/mutation.html' },
  jsonReporter: { fileName: 'reports/mutation/mutation.json' },
  clearTextReporter: { allowColor: false, logTests: false, reportScoreTable: true },
  // Incremental: a later run re-tests only the mutants whose code or covering tests changed since
  // the last report (kept next to it); `npm run test:mutation -- --force` re-tests everything.
  incremental: true,
  incrementalFile: 'reports/mutation/stryker-incremental.json',
  tempDirName: '.stryker-tmp',
  cleanTempDir: true,
  // Measurement, not a gate (yet): see docs/testing.md.
  thresholds: { high: 90, low: 75, break: null },
};
