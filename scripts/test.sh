#!/usr/bin/env bash
# Installs what is needed, builds, and runs every test: the full suite on a Release build (CUDA
# parts compiled where nvcc exists; their tests skip without a GPU) with the real test models,
# then the unit tests again under AddressSanitizer + UndefinedBehaviorSanitizer.
set -euo pipefail
cd "$(dirname "$0")/.."
jobs=$(nproc)

bash scripts/setup.sh
python3 scripts/fetch_models.py --set test

cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=Release
cmake --build build -j"$jobs"
DSPARK_REQUIRE_MODELS=1 ctest --test-dir build --output-on-failure -j"$jobs"

# -O1 -g1: about half the compile time of -O2 -g; line tables keep sanitizer stack traces readable.
cmake -S . -B build-asan -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DDSPARK_SANITIZE=ON \
  -DDSPARK_CUDA=OFF -DCMAKE_CXX_FLAGS_RELWITHDEBINFO="-O1 -g1 -DNDEBUG"
cmake --build build-asan -j"$jobs"
ctest --test-dir build-asan -L unit --output-on-failure -j"$jobs"
