#!/usr/bin/env bash
# Regenerates the API report (etc/weightmix.api.md, api-extractor), the API reference (docs/api/,
# typedoc) and the error-code page (docs/errors.md) and fails if any differs from the committed
# file: the public surface and its documentation change only on purpose. `--update` rewrites them.
set -euo pipefail
cd "$(dirname "$0")/.."
update=false
[ "${1:-}" = --update ] && update=true
npx tsc -p tsconfig.json
if $update; then npx api-extractor run --local; else npx api-extractor run || { echo 'check:api: the public API changed (see build/api-extractor/weightmix.api.md); if on purpose, run npm run api:update and commit etc/weightmix.api.md' >&2; exit 1; }; fi
npx typedoc --logLevel Warn
npx tsx scripts/error-codes-doc.ts
$update && exit 0
changed=$(git status --porcelain -- etc/weightmix.api.md docs/api docs/errors.md)
if [ -n "$changed" ]; then
  echo "check:api: the generated API reference differs from the committed one; run npm run api:update and commit:" >&2
  echo "$changed" >&2
  exit 1
fi
echo 'check:api: the API report, docs/api/ and docs/errors.md are current'
