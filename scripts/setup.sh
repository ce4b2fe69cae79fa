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
# xgrammar (the grammar engine behind structured outputs): its C++ core from the pinned PyPI
# sdist, unpacked into third_party/ (git-ignored); CMake compiles it once per compiler
# (cmake/xgrammar.cmake) and every build folder links that library.
XGRAMMAR_VERSION=0.2.9
XGRAMMAR_SHA256=87b466bca2475e29bb0323abc62c6c33cbcbcff47e5fb800a3e2099ac9620b90
xg_root="$(cd "$(dirname "$0")/.." && pwd)/third_party"
xg_dir="$xg_root/xgrammar-$XGRAMMAR_VERSION"
if [ ! -f "$xg_dir/.unpacked" ]; then
  mkdir -p "$xg_root"
  xg_tar="$xg_root/xgrammar-$XGRAMMAR_VERSION.tar.gz"
  if [ ! -f "$xg_tar" ] || ! echo "$XGRAMMAR_SHA256  $xg_tar" | sha256sum -c --quiet 2>/dev/null; then
    echo "setup: fetching the xgrammar $XGRAMMAR_VERSION sdist from PyPI"
    rm -f "$xg_tar"
    # The sdist's address on PyPI's file host (from https://pypi.org/pypi/xgrammar/json).
    curl -fsSL --retry 3 -o "$xg_tar" "https://files.pythonhosted.org/packages/3a/2f/\
5bf8e8fa6619cff534932f79b0abc81a417d354bc5093252c1a6081d0a93/xgrammar-$XGRAMMAR_VERSION.tar.gz"
  fi
  if ! echo "$XGRAMMAR_SHA256  $xg_tar" | sha256sum -c --quiet; then
    echo "setup: xgrammar-$XGRAMMAR_VERSION.tar.gz does not match its pinned sha256" >&2
    rm -f "$xg_tar"; exit 1
  fi
  rm -rf "$xg_dir"
  tar -xzf "$xg_tar" -C "$xg_root"
  touch "$xg_dir/.unpacked"
fi
echo "setup: done"
