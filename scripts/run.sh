#!/usr/bin/env bash
# Installs what is needed, builds, fetches the default model and runs the main job.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
python3 scripts/fetch_models.py --set default
cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=Release
cmake --build build -j"$(nproc)" --target dspark
# SmolLM2-Instruct speaks ChatML; `dspark serve` will apply the model's chat template itself.
question=${DSPARK_PROMPT:-Explain in three sentences why reading model weights limits decoding speed.}
prompt=$(printf '<|im_start|>user\n%s<|im_end|>\n<|im_start|>assistant\n' "$question")
./build/dspark generate -m models/SmolLM2-135M-Instruct.Q4_1.gguf -p "$prompt" \
  -n "${DSPARK_N:-128}" --temp 0.2 "$@"
