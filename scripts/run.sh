#!/usr/bin/env bash
# Installs what is needed, builds, fetches the default model and runs the main job.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
python3 scripts/fetch_models.py --set default
cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=Release
cmake --build build -j"$(nproc)" --target dspark
./build/dspark generate -m models/SmolLM2-135M-Instruct.Q4_1.gguf \
  -p "${DSPARK_PROMPT:-The three most useful things to know about speculative decoding are}" \
  -n "${DSPARK_N:-128}" "$@"
