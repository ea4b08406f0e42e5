#!/usr/bin/env bash
# Builds the addon that `npm pack` publishes: prebuilds/linux-x64/weightmix.node (Node-API, one binary for
# every Node version), CUDA kernels for sm_80/86/89/90 plus compute_90 PTX, the CUDA runtime and the C++
# runtime linked in, libcuda loaded only when a CUDA call is made. Refuses a binary that needs more than
# glibc and libgcc_s, and writes prebuilds/linux-x64/weightmix.json with the glibc floor that lib/engine/native-loader.ts reads.
# WEIGHTMIX_PREBUILD_ARCHS="90-real" builds fewer architectures while iterating (never for publishing).
# linux-arm64 (CPU only) joins when Debian's cross compiler aarch64-linux-gnu-g++ is on PATH.
set -euo pipefail
cd "$(dirname "$0")/.."

archs=${WEIGHTMIX_PREBUILD_ARCHS:-"80-real;86-real;89-real;90-real;90-virtual"}
cmake_js=(node node_modules/cmake-js/bin/cmake-js)
command -v nvcc >/dev/null || { echo "prebuild: nvcc is not on PATH; the published addon carries the CUDA kernels" >&2; exit 1; }

# Checks one binary and writes its manifest: $1 folder (prebuilds/<platform>-<arch>), $2 readelf machine name,
# $3 the objdump for that machine.
check_and_describe() {
  local dir=$1 machine=$2 objdump=$3 file=$1/weightmix.node
  readelf -h "$file" | grep -q "Machine: *$machine" || { echo "prebuild: $file is not a $machine binary" >&2; exit 1; }
  local needed
  needed=$(readelf -d "$file" | sed -n 's/.*(NEEDED).*\[\(.*\)\]/\1/p' | sort | tr '\n' ' ')
  for lib in $needed; do
    case $lib in
      libc.so.6 | libm.so.6 | libpthread.so.0 | libdl.so.2 | librt.so.1 | libgcc_s.so.1 | ld-linux-*) ;;
      *) echo "prebuild: $file needs $lib; the prebuild may need only glibc and libgcc_s" >&2; exit 1 ;;
    esac
  done
  local glibc
  glibc=$($objdump -T "$file" | grep -o 'GLIBC_[0-9.]*' | sed 's/GLIBC_//' | sort -uV | tail -1)
  # README promises this floor (Ubuntu 22.04, Debian 12, RHEL 9); a newer one is a regression to fix, not to ship.
  if [ "$(printf '%s\n' "$glibc" 2.34 | sort -V | tail -1)" != 2.34 ]; then
    echo "prebuild: $file needs glibc $glibc, above the 2.34 that README promises:" >&2
    $objdump -T "$file" | grep -E 'GLIBC_2\.(3[5-9]|[4-9][0-9])' >&2
    exit 1
  fi
  printf '{"glibc":"%s","needed":"%s"}\n' "$glibc" "${needed% }" >"$dir/weightmix.json"
  # Only the module's entry points are exported (native/exports.map: the linked-in libstdc++ and our own symbols stay private).
  local exported
  exported=$($objdump -T "$file" | grep -E '^[0-9a-f]+ [gwu]' | grep -v '\*UND\*' | awk '{print $NF}' | sort | tr '\n' ' ')
  case $exported in
    "napi_register_module_v1 " | "napi_register_module_v1 node_api_module_get_api_version_v1 " | "node_api_module_get_api_version_v1 napi_register_module_v1 ") ;;
    *) echo "prebuild: $file exports more than its Node-API entry points: ${exported:0:300}" >&2; exit 1 ;;
  esac
  echo "prebuild: $file: $(du -h "$file" | cut -f1), needs ${needed% } (glibc >= $glibc), exports ${exported% }"
}

echo "== prebuild linux-x64 (CUDA $archs)"
rm -rf build-prebuild
"${cmake_js[@]}" compile --out build-prebuild --CDWEIGHTMIX_PORTABLE=ON "--CDWEIGHTMIX_CUDA_ARCHITECTURES=$archs"
mkdir -p prebuilds/linux-x64
strip --strip-unneeded -o prebuilds/linux-x64/weightmix.node build-prebuild/Release/weightmix.node
check_and_describe prebuilds/linux-x64 "Advanced Micro Devices X86-64" objdump
want=$(tr ';' '\n' <<<"$archs" | sed -e 's/^\([0-9]*\)-real$/sm_\1/' -e 's/^\([0-9]*\)-virtual$/compute_\1/' | sort -V | tr '\n' ' ')
have=$(node scripts/fatbin-archs.js prebuilds/linux-x64/weightmix.node | tr ' ' '\n' | sort -V | tr '\n' ' ')
[ "$have" = "$want" ] || { echo "prebuild: the CUDA code in the binary is [${have% }], not the [${want% }] asked for" >&2; exit 1; }
echo "prebuild: CUDA code in the binary: ${have% }"
node -e '
  const info = require("./prebuilds/linux-x64/weightmix.node").info();
  if (!info.cudaCompiled || !info.build.cudaArchitectures) { console.error("prebuild: the binary has no CUDA kernels"); process.exit(1); }
  console.log("prebuild: loads; CUDA " + info.build.cudaVersion + " for " + info.build.cudaArchitectures + "; " + (info.cudaUnavailable ?? "GPU usable"));'

if command -v aarch64-linux-gnu-g++ >/dev/null; then
  echo "== prebuild linux-arm64 (cross compiled, CPU only)"
  rm -rf build-prebuild-arm64
  "${cmake_js[@]}" compile --out build-prebuild-arm64 --arch arm64 --CDWEIGHTMIX_PORTABLE=ON --CDWEIGHTMIX_NO_CUDA=ON \
    --CDCMAKE_SYSTEM_NAME=Linux --CDCMAKE_SYSTEM_PROCESSOR=aarch64 --CDCMAKE_CXX_COMPILER=aarch64-linux-gnu-g++
  mkdir -p prebuilds/linux-arm64
  aarch64-linux-gnu-strip --strip-unneeded -o prebuilds/linux-arm64/weightmix.node build-prebuild-arm64/Release/weightmix.node
  check_and_describe prebuilds/linux-arm64 AArch64 aarch64-linux-gnu-objdump
else
  echo "prebuild: skipping linux-arm64: no aarch64-linux-gnu-g++ (apt-get install g++-aarch64-linux-gnu)"
  rm -rf prebuilds/linux-arm64
fi
