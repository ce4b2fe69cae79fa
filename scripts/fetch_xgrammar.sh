#!/usr/bin/env bash
# Fetches xgrammar's pinned source (the grammar engine behind structured outputs) from PyPI and
# unpacks it into third_party/xgrammar-<version>/ (git-ignored), where cmake/xgrammar.cmake
# compiles its C++ core. Verifies the sdist's sha256; does nothing when it is already unpacked.
# Needs curl, sha256sum and tar. Called by scripts/setup.sh and the Dockerfile.
set -euo pipefail
XGRAMMAR_VERSION=0.2.9
XGRAMMAR_SHA256=87b466bca2475e29bb0323abc62c6c33cbcbcff47e5fb800a3e2099ac9620b90
# The sdist's address on PyPI's file host (listed by https://pypi.org/pypi/xgrammar/json).
XGRAMMAR_URL="https://files.pythonhosted.org/packages/3a/2f/\
5bf8e8fa6619cff534932f79b0abc81a417d354bc5093252c1a6081d0a93/xgrammar-$XGRAMMAR_VERSION.tar.gz"

root="${1:-$(cd "$(dirname "$0")/.." && pwd)/third_party}"
dir="$root/xgrammar-$XGRAMMAR_VERSION"
[ -f "$dir/.unpacked" ] && exit 0
mkdir -p "$root"
tarball="$root/xgrammar-$XGRAMMAR_VERSION.tar.gz"
verify() { echo "$XGRAMMAR_SHA256  $tarball" | sha256sum -c --quiet 2>/dev/null; }
if [ ! -f "$tarball" ] || ! verify; then
  echo "fetch_xgrammar: fetching the xgrammar $XGRAMMAR_VERSION sdist from PyPI"
  curl -fsSL --retry 3 -o "$tarball.part" "$XGRAMMAR_URL"
  mv "$tarball.part" "$tarball"
fi
if ! verify; then
  echo "fetch_xgrammar: $tarball does not match its pinned sha256" >&2
  rm -f "$tarball"
  exit 1
fi
rm -rf "$dir"
tar -xzf "$tarball" -C "$root"
touch "$dir/.unpacked"
