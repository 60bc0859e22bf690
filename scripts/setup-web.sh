#!/usr/bin/env bash
# Install what the browser demo page, the cluster dashboard and the browser
# e2e tests need, and bundle both pages into web/dist/. Idempotent; a fast
# no-op when up to date.
#
#   scripts/setup-web.sh            # chromium (apt) + npm ci + bundle
#   SKIP_CHROMIUM=1 scripts/setup-web.sh   # page only
#
# Env: MAFALDA_CACHE (default /var/cache/mafalda) holds the npm cache.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
WEB="$ROOT/web"
CACHE="${MAFALDA_CACHE:-/var/cache/mafalda}"
export npm_config_cache="$CACHE/npm"
export npm_config_audit=false npm_config_fund=false npm_config_update_notifier=false

log() { echo "setup-web: $*"; }

# 1. Chromium from Debian (never any other route).
if [[ "${SKIP_CHROMIUM:-0}" != 1 ]]; then
  if [[ -x /usr/bin/chromium ]]; then
    :
  else
    log "installing chromium with apt"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends chromium >/dev/null
    [[ -x /usr/bin/chromium ]] || { log "chromium install failed"; exit 1; }
  fi
fi

command -v npm >/dev/null || { log "npm not found (install nodejs >= 18)"; exit 1; }

# 2. npm ci when node_modules does not match package-lock.json.
mkdir -p "$npm_config_cache"
lock_sum="$(sha256sum "$WEB/package-lock.json" | cut -d' ' -f1)"
stamp="$WEB/node_modules/.mafalda-lock.sha256"
if [[ ! -f "$stamp" || "$(cat "$stamp")" != "$lock_sum" ]]; then
  log "npm ci (cache $npm_config_cache)"
  (cd "$WEB" && npm ci --prefer-offline --no-audit --no-fund --loglevel=error)
  echo "$lock_sum" > "$stamp"
fi

# 3. Bundle when any input is newer than the bundle: two pages, the demo
# (index.html, src/app.js) and the cluster dashboard (dashboard.html,
# src/dashboard.js), each script bundled on its own into dist/.
PAGES=(index.html style.css dashboard.html dashboard.css)
BUNDLES=(app.js dashboard.js)
need_build=0
for f in "${PAGES[@]}" "${BUNDLES[@]}"; do
  [[ -f "$WEB/dist/$f" ]] || need_build=1
done
if [[ $need_build == 0 ]]; then
  inputs=("$WEB/src" "$WEB/package.json" "$stamp")
  for f in "${PAGES[@]}"; do inputs+=("$WEB/$f"); done
  for b in "${BUNDLES[@]}"; do
    if [[ -n "$(find "${inputs[@]}" -newer "$WEB/dist/$b" -print -quit)" ]]; then need_build=1; fi
  done
fi
if [[ $need_build == 1 ]]; then
  log "bundling web/dist"
  mkdir -p "$WEB/dist"
  for f in "${PAGES[@]}"; do cp "$WEB/$f" "$WEB/dist/"; done
  "$WEB/node_modules/.bin/esbuild" "$WEB/src/app.js" "$WEB/src/dashboard.js" --bundle --format=iife \
    --target=chrome110 --minify --sourcemap --log-level=warning --outdir="$WEB/dist"
fi
log "ok"
