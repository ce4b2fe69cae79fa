#!/usr/bin/env bash
# The one prepared check for a machine with an NVIDIA GPU: builds the CUDA backend's tests and
# benchmark in build-gpu (-DDSPARK_CUDA=ON, sm_90), runs them, and prints a summary table last.
#
#   scripts/gpu_check.sh --prepare   Run here, where Debian's package servers answer: stores the
#                                    -dev packages the build needs (gtest, spdlog, fmt, nlohmann
#                                    json, pcre2, pkgconf; ~10 MB, no models) unpacked under
#                                    build-gpu-deps/, which git ignores. Carry that folder to
#                                    the GPU machine (device tool: carry ["build-gpu-deps"]).
#   scripts/gpu_check.sh             Run on the GPU machine from anywhere in the tree. Uses the
#                                    system's packages when installed, else build-gpu-deps/,
#                                    else tries scripts/setup.sh (which needs a network).
#
# Logs go to $OUT when set (at most 7 files: env.log, configure.log, build.log,
# cuda_tests.log, cuda_tests.xml, bench.log, summary.txt), else to build-gpu/logs.
# Environment: GPU_CHECK_BUDGET_S (total seconds, default 540: every step's time limit is cut
# to what is left, so the summary prints before a 600 s limit), JOBS (default 16),
# CUDA_ARCH (default 90).
# Exit status: 0 all steps ran and every test passed on a device; 1 a step or a test failed;
# 2 no CUDA device (the build worked, tests were skipped, no benchmark numbers).
set -u

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
DEPS="$ROOT/build-gpu-deps"
BUILD="$ROOT/build-gpu"

# ---- --prepare: fetch the packages here --------------------------------------------------------

# Debian bookworm packages for find_package(nlohmann_json, spdlog, GTest) and
# pkg_check_modules(libpcre2-8), with the shared libraries their CMake files point at.
DEB_PACKAGES=(nlohmann-json3-dev libspdlog-dev libspdlog1.10 libfmt-dev libfmt9 libgtest-dev
  libgmock-dev libpcre2-dev libpcre2-8-0 libpcre2-16-0 libpcre2-32-0 libpcre2-posix3
  pkgconf-bin libpkgconf3)

prepare() {
  set -e
  rm -rf "$DEPS"
  mkdir -p "$DEPS/debs" "$DEPS/root"
  echo "gpu_check --prepare: downloading ${#DEB_PACKAGES[@]} packages into $DEPS"
  (cd "$DEPS/debs" && apt-get download "${DEB_PACKAGES[@]}")
  for deb in "$DEPS"/debs/*.deb; do dpkg -x "$deb" "$DEPS/root"; done
  rm -rf "$DEPS/debs" "$DEPS/root/usr/share/doc" "$DEPS/root/usr/share/man"
  # pkgconf from the bundle, finding its own library; .pc files name /usr, so the build sets
  # PKG_CONFIG_SYSROOT_DIR to the bundle.
  cat >"$DEPS/pkg-config" <<'EOF'
#!/bin/sh
here=$(cd "$(dirname "$0")" && pwd)
LD_LIBRARY_PATH="$here/root/usr/lib/x86_64-linux-gnu${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}" \
  exec "$here/root/usr/bin/pkgconf" "$@"
EOF
  chmod +x "$DEPS/pkg-config"
  echo "gpu_check --prepare: done, $(du -sh "$DEPS" | cut -f1) in $DEPS (carry build-gpu-deps)"
}

if [ "${1:-}" = "--prepare" ]; then
  prepare
  exit 0
elif [ $# -gt 0 ]; then
  echo "usage: $0 [--prepare]" >&2
  exit 2
fi

# ---- the check ---------------------------------------------------------------------------------

BUDGET=${GPU_CHECK_BUDGET_S:-540}
JOBS=${JOBS:-16}
ARCH=${CUDA_ARCH:-90}
LOGS=${OUT:-$BUILD/logs}
START=$SECONDS
mkdir -p "$LOGS" "$BUILD"

declare -A STATE=() TIME=()  # per step: ok / failed (rc) / timed out / skipped; seconds
say() { echo "gpu_check: $*"; }

# Time limit for a step: its own limit, cut to the budget left minus 15 s for the summary.
limit_for() {
  local left=$((BUDGET - (SECONDS - START) - 15))
  [ "$left" -lt "$1" ] && echo "$left" || echo "$1"
}

# run_step NAME LIMIT LOG COMMAND...: runs with a time limit, output appended to LOG.
run_step() {
  local name=$1 limit log=$3
  limit=$(limit_for "$2")
  shift 3
  if [ "$limit" -le 5 ]; then
    STATE[$name]="skipped (budget spent)"
    return 1
  fi
  say "$name (limit ${limit}s, log $log)"
  local t0=$SECONDS rc
  timeout --kill-after=10 "$limit" "$@" >>"$log" 2>&1
  rc=$?
  TIME[$name]=$((SECONDS - t0))
  if [ $rc -eq 0 ]; then
    STATE[$name]=ok
  elif [ $rc -eq 124 ] || [ $rc -eq 137 ]; then
    STATE[$name]="timed out after ${limit}s"
  else
    STATE[$name]="failed (rc $rc)"
  fi
  say "$name: ${STATE[$name]} in ${TIME[$name]}s"
  return $rc
}

# ---- environment ----
ENV_LOG="$LOGS/env.log"
: >"$ENV_LOG"
if ! command -v nvcc >/dev/null 2>&1 && [ -x /usr/local/cuda/bin/nvcc ]; then
  export PATH="/usr/local/cuda/bin:$PATH"
fi
GPU_LINE="none"
if command -v nvidia-smi >/dev/null 2>&1; then
  if smi=$(timeout 30 nvidia-smi --query-gpu=name,driver_version,memory.total \
    --format=csv,noheader 2>&1) && [ -n "$smi" ]; then
    GPU_LINE=$(echo "$smi" | head -1)
  else
    GPU_LINE="none (nvidia-smi: $(echo "$smi" | head -1))"
  fi
else
  GPU_LINE="none (no nvidia-smi)"
fi
{
  echo "date: $(date -u)"
  echo "gpu: $GPU_LINE"
  echo "host: $(uname -a)"
  [ -r /etc/os-release ] && grep PRETTY_NAME /etc/os-release
  for tool in nvcc g++ cmake ninja python3; do
    echo "$tool: $(command -v $tool 2>/dev/null || echo missing) $($tool --version 2>/dev/null | grep -m1 -iE 'release|[0-9]+\.[0-9]+')"
  done
  echo "cublas: $(find /usr/local/cuda/lib64/ -name "libcublas.so*" 2>/dev/null | head -1)"
} >>"$ENV_LOG" 2>&1
cat "$ENV_LOG"

# Tests fail instead of skipping when nvidia-smi saw a GPU but the runtime cannot use it.
REQUIRE_CUDA=0
case "$GPU_LINE" in none*) ;; *) REQUIRE_CUDA=1 ;; esac

# ---- packages ----
CMAKE_ARGS=()
missing=()
for pkg in nlohmann-json3-dev libspdlog-dev libgtest-dev libgmock-dev libpcre2-dev; do
  dpkg -s "$pkg" >/dev/null 2>&1 || missing+=("$pkg")
done
command -v pkg-config >/dev/null 2>&1 || missing+=(pkg-config)
if [ ${#missing[@]} -eq 0 ]; then
  PACKAGES="system"
elif [ -x "$DEPS/pkg-config" ]; then
  PACKAGES="carried build-gpu-deps (system lacks ${missing[*]})"
  P="$DEPS/root/usr"
  LIBCMAKE="$P/lib/x86_64-linux-gnu/cmake"
  CMAKE_ARGS+=("-DCMAKE_PREFIX_PATH=$P" "-Dnlohmann_json_DIR=$P/share/cmake/nlohmann_json"
    "-Dspdlog_DIR=$LIBCMAKE/spdlog" "-Dfmt_DIR=$LIBCMAKE/fmt" "-DGTest_DIR=$LIBCMAKE/GTest"
    "-DPKG_CONFIG_EXECUTABLE=$DEPS/pkg-config")
  export PKG_CONFIG_LIBDIR="$P/lib/x86_64-linux-gnu/pkgconfig:$P/share/pkgconfig"
  export PKG_CONFIG_SYSROOT_DIR="$DEPS/root"
else
  PACKAGES="setup.sh (system lacks ${missing[*]}, no build-gpu-deps carried)"
  run_step setup 150 "$ENV_LOG" bash "$ROOT/scripts/setup.sh"
  PACKAGES="$PACKAGES: ${STATE[setup]}"
fi
say "packages: $PACKAGES"

# ---- configure ----
# Warnings stay visible in build.log but do not stop the build: this check is about the
# kernels on the device, and another compiler version may warn where g++ 12 does not.
LAUNCHER="$BUILD/drop-werror.sh"
cat >"$LAUNCHER" <<'EOF'
#!/usr/bin/env bash
args=()
for a in "$@"; do
  [ "$a" = "-Werror" ] && continue
  args+=("${a//,-Werror/}")
done
exec "${args[@]}"
EOF
chmod +x "$LAUNCHER"
GENERATOR="Unix Makefiles"
command -v ninja >/dev/null 2>&1 && GENERATOR=Ninja
CONFIGURE_LOG="$LOGS/configure.log"
BUILD_LOG="$LOGS/build.log"
: >"$CONFIGURE_LOG"
: >"$BUILD_LOG"
# CMAKE_CUDA20_STANDARD_COMPILE_OPTION: CMake before 3.26 does not know nvcc 12+ takes
# -std=c++20; newer CMake sets it itself and ignores this. CMAKE_POLICY_VERSION_MINIMUM lets
# CMake 4 read package files written for older CMake.
run_step configure 180 "$CONFIGURE_LOG" cmake -S "$ROOT" -B "$BUILD" -G "$GENERATOR" \
  -DCMAKE_BUILD_TYPE=Release -DDSPARK_CUDA=ON -DCMAKE_CUDA_ARCHITECTURES="$ARCH" \
  -DCMAKE_CUDA20_STANDARD_COMPILE_OPTION=-std=c++20 -DCMAKE_POLICY_VERSION_MINIMUM=3.5 \
  -DCMAKE_CXX_COMPILER_LAUNCHER="$LAUNCHER" -DCMAKE_CUDA_COMPILER_LAUNCHER="$LAUNCHER" \
  "${CMAKE_ARGS[@]}"

# ---- build ----
if [ "${STATE[configure]}" = ok ]; then
  run_step build 420 "$BUILD_LOG" cmake --build "$BUILD" --target cuda_tests bench_cuda \
    -j "$JOBS"
else
  STATE[build]="skipped (configure ${STATE[configure]})"
fi
WARNINGS=$(grep -c "warning:" "$BUILD_LOG" 2>/dev/null)

# ---- tests ----
TESTS_LOG="$LOGS/cuda_tests.log"
: >"$TESTS_LOG"
TEST_COUNTS="not run"
N_PASSED=0 N_SKIPPED=0
if [ "${STATE[build]}" = ok ]; then
  export DSPARK_REQUIRE_CUDA=$REQUIRE_CUDA
  run_step tests 180 "$TESTS_LOG" \
    "$BUILD/tests/cuda/cuda_tests" --gtest_output="xml:$LOGS/cuda_tests.xml"
  count() { grep -m1 -oE "^\[  $1 *\] [0-9]+" "$TESTS_LOG" | grep -oE '[0-9]+$' || echo 0; }
  if grep -q "^\[==========\] .* ran\." "$TESTS_LOG"; then
    N_PASSED=$(count PASSED)
    N_SKIPPED=$(count SKIPPED)
    TEST_COUNTS="$N_PASSED passed, $(count FAILED) failed, $N_SKIPPED skipped"
  else
    TEST_COUNTS="no gtest summary (crashed?)"
  fi
else
  STATE[tests]="skipped (build ${STATE[build]})"
fi

# ---- bench ----
BENCH_LOG="$LOGS/bench.log"
BENCH_SUMMARY="$BUILD/bench_summary.txt"
: >"$BENCH_LOG"
rm -f "$BENCH_SUMMARY"
if [ "${STATE[build]}" = ok ]; then
  run_step bench 120 "$BENCH_LOG" "$BUILD/tests/cuda/bench_cuda" --summary "$BENCH_SUMMARY"
else
  STATE[bench]="skipped (build ${STATE[build]})"
fi
value() { grep -m1 "^$1=" "$BENCH_SUMMARY" 2>/dev/null | cut -d= -f2-; }
BENCH_DEVICE=$(value device)

# ---- summary (printed last) ----
if [ "${STATE[tests]}" = ok ] && [ "${STATE[bench]}" = ok ] && [ "$BENCH_DEVICE" != none ] &&
  [ -n "$BENCH_DEVICE" ] && [ "$N_PASSED" -gt 0 ] && [ "$N_SKIPPED" -eq 0 ]; then
  RESULT="PASS"
  EXIT=0
elif [ "$BENCH_DEVICE" = none ] && [ "${STATE[tests]}" = ok ]; then
  RESULT="NO DEVICE (built; device tests skipped)"
  EXIT=2
else
  RESULT="FAIL"
  EXIT=1
fi
step_line() {
  printf '%-12s %s' "$1" "${STATE[$1]:-not run}"
  [ -n "${TIME[$1]:-}" ] && printf ' (%ss)' "${TIME[$1]}"
  printf '\n'
}
{
  echo "==================== gpu_check summary ===================="
  printf '%-12s %s\n' "gpu" "$GPU_LINE"
  printf '%-12s %s\n' "packages" "$PACKAGES"
  step_line configure
  printf '%-12s %s' "build" "${STATE[build]:-not run}"
  [ -n "${TIME[build]:-}" ] && printf ' (%ss, %s warnings)' "${TIME[build]}" "${WARNINGS:-0}"
  printf '\n'
  step_line tests
  printf '%-12s %s\n' "" "$TEST_COUNTS"
  step_line bench
  if [ -n "$BENCH_DEVICE" ] && [ "$BENCH_DEVICE" != none ]; then
    printf '%-12s %s (cc %s)\n' "device" "$BENCH_DEVICE" "$(value cc)"
    printf '%-12s read kernel %s GB/s, memcpy D2D %s GB/s (read+write)\n' "bandwidth" \
      "$(value read_gbps)" "$(value d2d_gbps)"
    printf '%-12s [16384, 4096] %s GB/s; [1, 896] %s us; [16, 1536] %s us\n' "rmsnorm" \
      "$(value rmsnorm_gbps)" "$(value rmsnorm_1x896_us)" "$(value rmsnorm_16x1536_us)"
    printf '%-12s %-12s %10s %10s %10s   (us per call; weight GB/s at t=1)\n' "gemm fp16" \
      "shape" "t=1" "t=8" "t=16"
    for shape in 896x4864 1536x8960; do
      printf '%-12s %-12s %10s %10s %10s   %s GB/s\n' "" "${shape/x/->}" \
        "$(value gemm_f16_${shape}_t1_us)" "$(value gemm_f16_${shape}_t8_us)" \
        "$(value gemm_f16_${shape}_t16_us)" "$(value gemm_f16_${shape}_t1_gbps)"
    done
  elif [ "$BENCH_DEVICE" = none ]; then
    printf '%-12s none: %s\n' "device" "$(value why)"
  fi
  printf '%-12s %s\n' "logs" "$LOGS"
  printf '%-12s %s (%ss of %ss budget)\n' "result" "$RESULT" "$((SECONDS - START))" "$BUDGET"
  echo "==========================================================="
} | tee "$LOGS/summary.txt"
exit $EXIT
