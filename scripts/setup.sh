#!/usr/bin/env bash
# Installs everything dspark needs to build and test: Debian packages for the C++ side and a few
# PyPI packages for the reference tests and model fetching. Idempotent: safe to run again.
# --train also installs what DSpark drafter training needs (PyTorch, matplotlib; see
# docs/dspark-training.md). PyTorch is optional: nothing else builds, serves or tests with it.
set -euo pipefail
train=0
for arg in "$@"; do
  case "$arg" in
    --train) train=1 ;;
    *) echo "setup: unknown option '$arg' (only --train)" >&2; exit 2 ;;
  esac
done

need_apt=()
for pkg in build-essential cmake ninja-build pkg-config git clang libclang-rt-14-dev \
  libboost-dev libboost-program-options-dev nlohmann-json3-dev libspdlog-dev libfmt-dev \
  libgtest-dev libgmock-dev libpcre2-dev libyaml-cpp-dev python3-pip unzip curl ca-certificates; do
  dpkg -s "$pkg" >/dev/null 2>&1 || need_apt+=("$pkg")
done
if [ ${#need_apt[@]} -gt 0 ]; then
  echo "setup: installing Debian packages: ${need_apt[*]}"
  SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO=sudo
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${need_apt[@]}"
fi

# Python helpers (references, model fetching). Pinned so references stay reproducible.
PY=${PYTHON:-python3}
req="$(dirname "$0")/requirements.txt"
if ! $PY -m pip install -q --disable-pip-version-check -r "$req" 2>/dev/null; then
  $PY -m pip install -q --disable-pip-version-check --break-system-packages -r "$req"
fi
if [ "$train" -eq 1 ]; then
  treq="$(dirname "$0")/requirements-train.txt"
  echo "setup: installing the training packages (PyTorch is a large download)"
  if ! $PY -m pip install -q --disable-pip-version-check -r "$treq" 2>/dev/null; then
    $PY -m pip install -q --disable-pip-version-check --break-system-packages -r "$treq"
  fi
fi
# xgrammar (the grammar engine behind structured outputs): its pinned sdist from PyPI, unpacked
# into third_party/ (git-ignored); CMake compiles its C++ core once per compiler.
bash "$(dirname "$0")/fetch_xgrammar.sh"
echo "setup: done"
