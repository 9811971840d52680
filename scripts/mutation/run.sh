#!/usr/bin/env bash
# npm run test:mutation [-- <stryker options>]: Stryker over the modules of stryker.config.mjs, then
# the score per module and the mutants no test noticed (summary.mjs). Options go to `stryker run`,
# e.g. `--mutate media-node/contract/src/internal-api/hmac.ts`, `--ignoreStatic`, `--force`.
# See docs/testing.md.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."
# redis-server for test/acl/acl-store.test.ts (and the pinned Node.js, node_modules/.bin/node).
bash scripts/setup.sh --test
PATH="$PWD/node_modules/.bin:$PATH"
start=$(date +%s)
stryker run "$@"
node scripts/mutation/summary.mjs
echo "mutation run: $(($(date +%s) - start)) s"
