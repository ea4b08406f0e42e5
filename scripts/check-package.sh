#!/usr/bin/env bash
# The published package as a user gets it. `npm pack` (needs prebuilds/: npm run build:prebuilt), then the
# tarball installed into empty projects with `npm install --ignore-scripts`, plain `npm install` and pnpm
# (CI=true), each with compilers replaced on PATH by stand-ins that log and fail; from each project
# `weightmix demo` and `weightmix info --json` must run on the prebuild with CUDA compiled in. Then
# `weightmix-build` rebuilds from source inside one installed package (CPU only, for time), which must win.
# bun joins when it is on PATH. Prints the tarball size and the install times (BENCHMARKS.md).
# PNPM=/path/to/pnpm picks a pnpm; else the registry's @pnpm/exe is installed into the scratch folder.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
work=$(mktemp -d "${TMPDIR:-/tmp}/weightmix-package.XXXXXX")
trap 'rm -rf "$work"' EXIT
fail() { echo "check-package: $*" >&2; exit 1; }

echo "== npm pack"
npm pack --pack-destination "$work" >"$work/pack.log" 2>&1 || { cat "$work/pack.log" >&2; fail "npm pack failed"; }
tgz=$(ls "$work"/weightmix-*.tgz)
size=$(stat -c %s "$tgz")
tar -tzf "$tgz" >"$work/contents"
for f in package/prebuilds/linux-x64/weightmix.node package/prebuilds/linux-x64/weightmix.json package/CMakeLists.txt package/native/addon.cc package/scripts/build-native.js package/dist/lib/cli.js; do
  grep -qx "$f" "$work/contents" || fail "the tarball lacks $f"
done
echo "tarball: $(basename "$tgz"), $size bytes ($(awk "BEGIN{printf \"%.1f\", $size/1048576}") MiB), $(wc -l <"$work/contents") files"
[ "$size" -le $((30 * 1024 * 1024)) ] || fail "the tarball is over 30 MB"

# Compilers and build tools on PATH become stand-ins that record the call and fail.
mkdir -p "$work/no-compilers"
for tool in cc c++ gcc g++ clang clang++ cmake make ninja nvcc node-gyp; do
  printf '#!/bin/sh\necho "%s $*" >>%s/compiler-calls\nexit 1\n' "$tool" "$work" >"$work/no-compilers/$tool"
  chmod +x "$work/no-compilers/$tool"
done
guarded_path="$work/no-compilers:$PATH"

pnpm=${PNPM:-}
if [ -z "$pnpm" ]; then
  npm install --prefix "$work/pnpm" --no-audit --no-fund --silent @pnpm/exe >/dev/null 2>&1 || fail "could not install @pnpm/exe from the registry"
  pnpm=$work/pnpm/node_modules/.bin/pnpm
fi

declare -A seconds
# $1 label, $2 project folder, $3... the install command (run there, compilers hidden, CI=true).
install_into() {
  local label=$1 dir=$2
  shift 2
  mkdir -p "$dir"
  printf '{"name":"consumer-%s","version":"1.0.0","private":true}\n' "$label" >"$dir/package.json"
  local start end
  start=$(date +%s.%N)
  (cd "$dir" && CI=true PATH="$guarded_path" "$@") >"$work/$label.log" 2>&1 || { cat "$work/$label.log" >&2; fail "$label: the install failed"; }
  end=$(date +%s.%N)
  seconds[$label]=$(awk "BEGIN{printf \"%.1f\", $end - $start}")
  [ ! -s "$work/compiler-calls" ] || fail "$label: a compiler ran during the install: $(head -3 "$work/compiler-calls")"
  [ ! -e "$dir/node_modules/weightmix/build" ] || fail "$label: the install built the addon (node_modules/weightmix/build exists)"
  ! grep -E "node-gyp|weightmix@[^ ]* \((pre|post)?install|IGNORED_BUILDS|[Ii]gnored build scripts" "$work/$label.log" || fail "$label: the package manager saw install scripts"
  echo "$label: installed in ${seconds[$label]} s, no compiler called"
}

# $1 project folder, $2 expected addon kind, $3... how to run a bin there.
run_from() {
  local dir=$1 kind=$2
  shift 2
  (cd "$dir" && "$@" weightmix demo) >"$work/demo.log" 2>&1 || { cat "$work/demo.log" >&2; fail "$dir: weightmix demo failed"; }
  grep -q "^interpolated at λ = 0.8" "$work/demo.log" || fail "$dir: weightmix demo printed no merge"
  (cd "$dir" && "$@" weightmix info --json) >"$work/info.json" || fail "$dir: weightmix info failed"
  KIND=$kind node -e '
    const r = JSON.parse(require("fs").readFileSync(process.argv[1], "utf8"));
    const want = process.env.KIND;
    const archs = "80-real,86-real,89-real,90-real,90-virtual";
    const problems = [];
    if (r.addon.kind !== want) problems.push(`addon ${r.addon.kind} (${r.addon.prebuildSkipped ?? r.addon.path}), want ${want}`);
    if (want === "prebuilt" && !(r.cudaCompiled && r.build.cudaArchitectures === archs)) problems.push(`CUDA ${r.build.cudaArchitectures} compiled in, want ${archs}`);
    if (problems.length) { console.error(problems.join("; ")); process.exit(1); }
    console.log(`  demo ran; info: ${r.addon.kind} ${r.addon.path}, ${r.build.system}, CUDA ${r.build.cudaVersion ?? "none"} (${r.build.cudaArchitectures ?? "-"}), ${r.cudaUnavailable ?? "GPU usable"}`);
  ' "$work/info.json" || fail "$dir: info --json: see above"
}

echo "== install the tarball into empty projects (compilers hidden)"
install_into npm-ignore-scripts "$work/a" npm install --no-audit --no-fund --ignore-scripts "$tgz"
run_from "$work/a" prebuilt npx --no-install
install_into npm "$work/b" npm install --no-audit --no-fund "$tgz"
run_from "$work/b" prebuilt npx --no-install
install_into pnpm "$work/c" "$pnpm" add --store-dir "$work/pnpm-store" "$tgz"
run_from "$work/c" prebuilt "$pnpm" exec
if command -v bun >/dev/null; then
  install_into bun "$work/d" bun add "$tgz"
  run_from "$work/d" prebuilt bun x
else
  echo "bun: skipped: no bun on PATH"
fi

echo "== weightmix-build inside the installed package (CPU only) replaces the prebuild"
(cd "$work/a" && WEIGHTMIX_NO_CUDA=1 npx --no-install weightmix-build) >"$work/source-build.log" 2>&1 || { tail -20 "$work/source-build.log" >&2; fail "weightmix-build failed"; }
run_from "$work/a" local npx --no-install

echo "package: tarball $size bytes; installs: npm --ignore-scripts ${seconds[npm-ignore-scripts]} s, npm ${seconds[npm]} s, pnpm ${seconds[pnpm]} s${seconds[bun]:+, bun ${seconds[bun]} s}"
