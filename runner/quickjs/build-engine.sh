#!/bin/sh
# Builds the QuickJS engine (engine.wasm) from the pinned registry package's
# C sources with Debian's clang-16, and writes engine.wasm.sha256.
# Needs: apt-get install -y clang-16 lld-16 wasi-libc libclang-rt-16-dev-wasm32
# Usage: build-engine.sh [OUTPUT_DIR]   (default: this folder)
# The sources are unpacked under .engine-src/ (git-ignored): they never enter
# the repository. Same inputs, same bytes: check-engine.sh relies on it.
set -eu

# The pin: QuickJS 2021-03-27 (MIT, Fabrice Bellard and Charlie Gordon) as
# shipped by the npm package qjsc 0.3.0 under package/deps/.
PACKAGE=qjsc@0.3.0
INTEGRITY=sha512-a7+cU6/IVcZbIejffdt/wZVMX6LL2MDL3HQ9Zb5Gm23G9DvBMS/z9GHFxz39bAvp2PvMOM+ypSOAyokt2DdZ2w==
QUICKJS_DIR=package/deps/quickjs_2021_03_27
QUICKJS_VERSION=2021-03-27

here=$(cd "$(dirname "$0")" && pwd)
out=$(mkdir -p "${1:-$here}" && cd "${1:-$here}" && pwd)
work=$here/.engine-src

command -v clang-16 >/dev/null || { echo "clang-16 not installed: apt-get install -y clang-16 lld-16 wasi-libc libclang-rt-16-dev-wasm32" >&2; exit 1; }
[ -f /usr/lib/wasm32-wasi/libc.a ] || { echo "wasi-libc not installed: apt-get install -y wasi-libc libclang-rt-16-dev-wasm32" >&2; exit 1; }

mkdir -p "$work"
tarball=$work/qjsc-0.3.0.tgz
if [ ! -f "$tarball" ]; then
  (cd "$work" && npm pack "$PACKAGE" --silent >/dev/null)
fi
actual=sha512-$(openssl dgst -sha512 -binary "$tarball" | base64 -w0)
[ "$actual" = "$INTEGRITY" ] || { echo "$tarball: integrity $actual, expected $INTEGRITY" >&2; exit 1; }

src=$work/src
rm -rf "$src"
mkdir -p "$src"
tar -xzf "$tarball" -C "$src" "$QUICKJS_DIR"
qjs=$src/$QUICKJS_DIR
grep -qx "$QUICKJS_VERSION" "$qjs/VERSION"
# WASI has no FE_UPWARD/FE_DOWNWARD: number printing falls back to the
# portable rounding path without this define.
sed -i '/^#define CONFIG_PRINTF_RNDN$/d' "$qjs/quickjs.c"
cp "$here/engine-main.c" "$qjs/"

# -DEMSCRIPTEN: no threads/Atomics, no computed-goto dispatch, no native stack
# check (the stack sits first in memory, so an overflow traps out of bounds).
# The prefix map keeps the build folder out of the bytes (assert messages).
cd "$qjs"
clang-16 --target=wasm32-wasi --sysroot=/usr -O2 -mexec-model=reactor \
  -D_GNU_SOURCE -DEMSCRIPTEN -DCONFIG_BIGNUM -DCONFIG_VERSION="\"$QUICKJS_VERSION\"" -D_WASI_EMULATED_SIGNAL \
  -ffile-prefix-map="$qjs"=quickjs -Wno-everything \
  quickjs.c libregexp.c libunicode.c cutils.c libbf.c engine-main.c \
  -lwasi-emulated-signal -Wl,-z,stack-size=1048576 -Wl,--stack-first \
  -o "$out/engine.wasm"
cd "$out"
sha256sum engine.wasm > engine.wasm.sha256
cat engine.wasm.sha256
