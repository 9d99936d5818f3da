#!/usr/bin/env bash
# Checks the TypeScript client package in clients/typescript:
#   1. a clean install from package-lock.json (npm ci);
#   2. src/generated/openapi.d.ts is what api/openapi.yaml generates;
#   3. the committed dist/bridge-client.js is the build of src/ (and src/
#      type-checks);
#   4. the unit tests (node --test);
#   5. the integration tests, when BRIDGE_URL, PROVISIONING_SECRET and JWT
#      name a running bridge (they skip themselves otherwise).
set -euo pipefail
cd "$(dirname "$0")/../clients/typescript"

step() { printf '\n=== clients/typescript: %s\n' "$*"; }

step "npm ci"
npm ci --no-audit --no-fund
step "generated types match api/openapi.yaml"
npm run --silent check:generated
step "dist/bridge-client.js matches the source"
npm run --silent check:build
step "unit tests"
npm test
if [ -n "${BRIDGE_URL:-}" ]; then
    step "integration tests against $BRIDGE_URL"
    npm run test:integration
fi
