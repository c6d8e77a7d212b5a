#!/usr/bin/env bash
# Builds the libFuzzer targets listed in tests/fuzz/targets (tests/fuzz/fuzz_<name>.c) with
# clang (ASan + UBSan) into build-fuzz/ and runs each, one after the other, for FUZZ_SECONDS
# (default 20) on its seed corpus tests/fuzz/corpus/<name>/ plus the inputs that once crashed it,
# tests/fuzz/regress/<name>/ (both copied to build-fuzz/corpus/<name>/, where new inputs are
# kept). A new target is a new file tests/fuzz/fuzz_<name>.c defining LLVMFuzzerTestOneInput plus
# its line in tests/fuzz/targets; it links against the whole library
# (src/, CUDA excluded) through an archive, so a source that clang cannot compile only breaks
# the targets that use it. A crash, leak, timeout or sanitizer report fails the run and leaves
# the reproducer in build-fuzz/crashes/<name>/ (rerun: build-fuzz/fuzz_<name> FILE).
# Per target: executions, edge coverage (libFuzzer "cov") and features ("ft") go to stdout and
# to build-fuzz/summary.txt.
# Usage: scripts/build-fuzz.sh [target-name ...]   (e.g. `scripts/build-fuzz.sh gguf`)
# Env: FUZZ_SECONDS, FUZZ_JOBS (parallel compile), CC (default clang).
set -u
cd "$(dirname "$0")/.."
out=build-fuzz
cc=${CC:-clang}
secs=${FUZZ_SECONDS:-20}
jobs=${FUZZ_JOBS:-$(nproc 2>/dev/null || echo 2)}

if ! command -v "$cc" >/dev/null; then
  echo "build-fuzz: $cc not found; install it with: apt-get install -y clang" >&2
  exit 1
fi
san="-fsanitize=address,undefined -fno-sanitize-recover=undefined -fno-omit-frame-pointer"
cflags="-std=c11 -g -D_GNU_SOURCE -Iinclude -Isrc $san"
libs="-lpthread -lm"
if pkg-config --exists libpcre2-8 2>/dev/null; then
  cflags="$cflags -DLLT_HAVE_PCRE2=1 $(pkg-config --cflags libpcre2-8)"
  libs="$libs $(pkg-config --libs libpcre2-8)"
fi

# 1. The library, instrumented for coverage (fuzzer-no-link), one object per source, at -O1;
# the CPU compute kernels (src/backend/cpu/, SIMD intrinsics, reached by no parser) at -O0:
# clang 14 with ASan + UBSan at -O1 spends minutes to hours on them (matmul.c: not done after
# 90 s, matmul_avx512.c: not done after 14 CPU-minutes; at -O0 6 and 18 s on this 2-core VM).
mkdir -p "$out/obj"
srcs=$(find src -name '*.c' -not -path 'src/backend/cuda/*' | sort)
printf '%s\n' $srcs | xargs -P "$jobs" -I{} sh -c '
  o='"$out"'/obj/$(echo {} | tr / _).o
  [ "$o" -nt {} ] && [ -z "$(find src include -name "*.h" -newer "$o" | head -1)" ] && exit 0
  case {} in src/backend/cpu/*) opt=-O0 ;; *) opt=-O1 ;; esac
  if '"$cc"' '"$cflags"' $opt -fsanitize=fuzzer-no-link -c {} -o "$o" 2>"$o.log"; then rm -f "$o.log";
  else echo "build-fuzz: {} does not compile with '"$cc"' (see $o.log); targets that need it will not link" >&2; rm -f "$o"; fi'
# An archive, so that each target pulls in only the objects it uses.
lib=$out/libllt_fuzz.a
rm -f "$lib"
ar rcs "$lib" "$out"/obj/*.o

# 2. Each target, then a timed run on its corpus.
listed=$(sed -e 's/#.*//' -e '/^[[:space:]]*$/d' tests/fuzz/targets)
status=0
for f in tests/fuzz/fuzz_*.c; do
  n=$(basename "$f" .c); n=${n#fuzz_}
  if ! printf '%s\n' $listed | grep -qx "$n"; then
    echo "build-fuzz: $f is not listed in tests/fuzz/targets" >&2; status=1
  fi
done
names=("$@")
[ ${#names[@]} -eq 0 ] && names=($listed)
summary=""
: >"$out/summary.txt"
for n in "${names[@]}"; do
  src=tests/fuzz/fuzz_$n.c
  bin=$out/fuzz_$n
  if ! $cc $cflags -O1 -fsanitize=fuzzer "$src" "$lib" $libs -o "$bin"; then
    echo "build-fuzz: $src does not build" >&2
    status=1; summary="$summary fuzz_$n:BUILD-FAILED"; continue
  fi
  corpus=$out/corpus/$n
  mkdir -p "$corpus" "$out/crashes/$n"
  for seeds in tests/fuzz/corpus/$n tests/fuzz/regress/$n; do
    [ -d "$seeds" ] && cp -n "$seeds"/* "$corpus"/ 2>/dev/null
  done
  echo "build-fuzz: running fuzz_$n for ${secs}s" >&2
  log=$out/fuzz_$n.log
  ASAN_OPTIONS=detect_leaks=1:allocator_may_return_null=1 \
    "$bin" -max_total_time="$secs" -rss_limit_mb=2048 -malloc_limit_mb=1024 -timeout=10 \
    -artifact_prefix="$out/crashes/$n/" "$corpus" >"$log" 2>&1
  rc=$?
  runs=$(grep -aEo 'Done [0-9]+ runs' "$log" | tail -1 | grep -Eo '[0-9]+')
  cov=$(grep -aEo 'cov: [0-9]+ ft: [0-9]+ corp: [0-9]+' "$log" | tail -1)
  line="fuzz_$n ${secs}s: ${runs:-?} runs, ${cov:-no coverage line}"
  if [ $rc -ne 0 ]; then
    status=1
    echo "build-fuzz: fuzz_$n FAILED (rc $rc); log $log, reproducer(s):" >&2
    ls "$out/crashes/$n/" >&2
    echo "  rerun one with: $bin $out/crashes/$n/FILE" >&2
    grep -aE 'ERROR|SUMMARY|runtime error' "$log" | head -5 >&2
    summary="$summary fuzz_$n:FAILED"; line="$line, FAILED (rc $rc)"
  else
    summary="$summary fuzz_$n:ok"; line="$line, 0 crashes"
  fi
  echo "$line" | tee -a "$out/summary.txt" >&2
done
echo "make fuzz:$summary"
exit $status
