#!/bin/sh
# CI check: rebuilds the engine where clang-16 is present and fails if the
# bytes differ from the committed engine.wasm (or its sha256 file).
set -eu
here=$(cd "$(dirname "$0")" && pwd)
if ! command -v clang-16 >/dev/null; then
  echo "skipped: clang-16 not installed"
  exit 0
fi
(cd "$here" && sha256sum -c --quiet engine.wasm.sha256)
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
"$here/build-engine.sh" "$tmp" >/dev/null
if ! cmp -s "$tmp/engine.wasm" "$here/engine.wasm"; then
  echo "engine.wasm differs from a rebuild: committed $(cut -d' ' -f1 "$here/engine.wasm.sha256"), rebuilt $(cut -d' ' -f1 "$tmp/engine.wasm.sha256")" >&2
  exit 1
fi
echo "engine.wasm rebuilt: same bytes ($(cut -d' ' -f1 "$here/engine.wasm.sha256"))"
