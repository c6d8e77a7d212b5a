#!/usr/bin/env bash
# tests/gpu/prebuild.sh: builds the CUDA binaries on this (GPU-less) machine for a device call, so
# that the call spends its minutes running rather than compiling: a CMake Release build in
# build-rel (no server: the device image lacks libmicrohttpd), the named targets stripped and
# packed into .gpu-prebuilt/bins.tar.xz (ignored by git; about 18 MB for llama-triton and
# test_cuda_ops, under the device tool's 64 MiB carry). On the device:
#   carry [".gpu-prebuilt"], then  LLT_GPU_PREBUILT=.gpu-prebuilt/bins.tar.xz tests/gpu/run.sh MODE
# (run.sh unpacks it under /tmp). Flash prefill changes recompile in 1-1.5 minutes on 2 cores, a
# fresh build of the CUDA backend takes about 10.
# usage: tests/gpu/prebuild.sh [TARGET ...]   (default: llama-triton test_cuda_ops)
set -eu
cd "$(dirname "$0")/../.."
TARGETS=${*:-llama-triton test_cuda_ops}
cmake -S . -B build-rel -DCMAKE_BUILD_TYPE=Release -DLLT_SERVER=OFF >/dev/null
cmake --build build-rel -j "$(nproc)" --target $TARGETS >&2
stage=$(mktemp -d)
mkdir -p "$stage/bin" .gpu-prebuilt
for t in $TARGETS; do cp "build-rel/$t" "$stage/bin/" && strip "$stage/bin/$t"; done
echo "$(git rev-parse --short HEAD)$(git diff --quiet HEAD || echo +uncommitted) $(date -u +%FT%TZ)" >"$stage/bin/TAG"
tar -C "$stage" -cf - bin | xz -9e >.gpu-prebuilt/bins.tar.xz
rm -rf "$stage"
echo "packed $TARGETS ($(cat <(tar -xJOf .gpu-prebuilt/bins.tar.xz bin/TAG))): .gpu-prebuilt/bins.tar.xz, $(du -h .gpu-prebuilt/bins.tar.xz | cut -f1)" >&2
