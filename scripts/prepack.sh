#!/usr/bin/env bash
# npm pack / npm publish: refuse a tarball without the prebuild, or with one older than the native sources.
set -euo pipefail
cd "$(dirname "$0")/.."
prebuild=prebuilds/linux-x64/weightmix.node
[ -f "$prebuild" ] || { echo "npm pack: no $prebuild; run \`npm run build:prebuilt\` first" >&2; exit 1; }
newer=$(find native CMakeLists.txt -newer "$prebuild" -type f | head -3 | tr '\n' ' ')
[ -z "$newer" ] || { echo "npm pack: $prebuild is older than ${newer% }; run \`npm run build:prebuilt\` again" >&2; exit 1; }
