#!/usr/bin/env bash
# Runs every test: C tests through ctest, then the Python tests; prints one summary line.
set -u
build=${1:-build}
py=${2:-/usr/bin/python3}
cd "$(dirname "$0")/.."

c_log=$(mktemp)
ctest --test-dir "$build" --output-on-failure -j "$(nproc 2>/dev/null || echo 2)" 2>&1 | tee "$c_log" >&2
c_rc=${PIPESTATUS[0]}
c_sum=$(grep -E 'tests passed|tests failed' "$c_log" | tail -1)
# Only the GPU tests may skip here (no device): a CPU test skipped means a missing dependency.
c_skip=$(grep -E '^\s+[0-9]+ - test_' "$c_log" | grep Skipped | grep -v ' test_cuda_' | sed 's/^\s*//')
if [ -n "$c_skip" ]; then
  echo "CPU tests skipped (missing build dependency?): $c_skip" >&2
  c_rc=1
fi
rm -f "$c_log"

p_rc=0
p_sum="no python tests"
if ls tests/python/test_*.py >/dev/null 2>&1; then
  p_log=$(mktemp)
  LLT_LIB="$PWD/$build/libllama_triton.so" LLT_CLI="$PWD/$build/llama-triton" \
    "$py" -m pytest -q --timeout=180 tests/python 2>&1 | tee "$p_log" >&2
  p_rc=${PIPESTATUS[0]}
  p_sum=$(grep -E '(passed|failed|error)' "$p_log" | tail -1)
  rm -f "$p_log"
fi

if [ "$c_rc" = 0 ] && [ "$p_rc" = 0 ]; then verdict=PASS; else verdict=FAIL; fi
echo "make test: $verdict (C: ${c_sum:-no result}; Python: ${p_sum})"
[ "$verdict" = PASS ]
