#!/usr/bin/env bash
# Installs what is needed, builds, fetches the default model and runs the main job: the
# OpenAI-compatible server on the default model (http://127.0.0.1:8000/v1 unless --host/--port
# say otherwise; extra arguments go to `dspark serve`).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
python3 scripts/fetch_models.py --set default
cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=Release
cmake --build build -j"$(nproc)" --target dspark
exec ./build/dspark serve -m models/SmolLM2-135M-Instruct.Q4_1.gguf --spec-method ngram "$@"
