#!/usr/bin/env bash
# Builds and runs the direct test of the libsrtp3 compatibility shim
# (build-support/mediasoup/test/srtp_compat_test.cpp) against the libsrtp and
# OpenSSL shims of the prepared third_party/mediasoup-sys, for every SRTP
# crypto suite mediasoup supports. Prints a PASS/FAIL line per suite and
# "N passed, M failed"; exits non-zero on any failure. Needs no network once
# scripts/setup-mediasoup.sh has run (it is run first; a no-op when done).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
CACHE="${MAFALDA_CACHE:-/var/cache/mafalda}"
TOOLS="$CACHE/tools/meson-1.12.0-ninja-1.13.2"
SUBPROJECTS="$ROOT/third_party/mediasoup-sys/subprojects"

"$ROOT/scripts/setup-mediasoup.sh"

# meson + ninja from the wheelhouse (the same versions mediasoup's tasks.py uses).
if [[ ! -x "$TOOLS/bin/meson" || ! -x "$TOOLS/bin/ninja" ]]; then
  rm -rf "$TOOLS"
  PIP_NO_INDEX=1 PIP_FIND_LINKS="$CACHE/wheelhouse" python3 -m pip install --quiet \
    --disable-pip-version-check --root-user-action=ignore --no-user --target "$TOOLS" meson==1.12.0 ninja==1.13.2
fi
export PYTHONPATH="$TOOLS${PYTHONPATH:+:$PYTHONPATH}"
export NINJA="$TOOLS/bin/ninja"

WORK="$(mktemp -d "${TMPDIR:-/tmp}/mafalda-srtp-test.XXXXXX")"
trap 'rm -rf "$WORK"' EXIT
mkdir -p "$WORK/src/subprojects"
cp "$ROOT/build-support/mediasoup/test/"{meson.build,srtp_compat_test.cpp} "$WORK/src/"
wrap_dir() { sed -n 's/^directory *= *//p' "$SUBPROJECTS/$1.wrap" | tr -d '[:space:]'; }
cp -R "$SUBPROJECTS/$(wrap_dir openssl)" "$WORK/src/subprojects/openssl"
cp -R "$SUBPROJECTS/$(wrap_dir libsrtp3)" "$WORK/src/subprojects/libsrtp3"

echo "building the SRTP compatibility test..."
if ! "$TOOLS/bin/meson" setup --buildtype release "$WORK/build" "$WORK/src" > "$WORK/setup.log" 2>&1; then
  cat "$WORK/setup.log"; echo "srtp-compat: meson setup failed"; exit 1
fi
if ! "$NINJA" -C "$WORK/build" > "$WORK/build.log" 2>&1; then
  cat "$WORK/build.log"; echo "srtp-compat: build failed"; exit 1
fi
"$WORK/build/srtp-compat-test"
