# shellcheck shell=bash
# Writing the certificates and configuration of a cluster of Mafalda nodes,
# one per address; sourced by scripts/cluster.sh (and the multi-node tests).
#
#   cluster_certs BIN DIR NAME...          # a CA and one certificate per node name
#   cluster_node_config FILE NAME IP CERTS SEEDS [STATIC_DIR] [LOG_LEVEL] [EXTRA]
#     HTTP on IP:3000, QUIC on IP:7000 (joining through SEEDS, addresses
#     separated by commas; a node skips its own),
#     WebRTC and cross-node pipes on IP, one worker, fast SWIM timings,
#     `[auth] mode = "dev"` (clients fetch tokens from each node's
#     GET /api/dev-token: these nodes are on private namespaces or a
#     developer's machine only); EXTRA is more TOML appended (sections not
#     written above).

cluster_certs() {
  local bin="$1" dir="$2"; shift 2
  mkdir -p "$dir"
  "$bin" cluster ca --out "$dir" >/dev/null || return 1
  local name
  for name in "$@"; do
    "$bin" cluster cert --node "$name" --ca-dir "$dir" --out "$dir" >/dev/null || return 1
  done
}

cluster_node_config() {
  local file="$1" name="$2" ip="$3" certs="$4" seeds
  seeds="$(echo "$5" | sed 's/[^,][^,]*/"&"/g; s/,/, /g')"
  local static="${6:-/nonexistent}" level="${7:-info}" extra="${8:-}"
  cat > "$file" <<TOML
[node]
name = "$name"

[http]
listen = "$ip:3000"
static_dir = "$static"
# The test network's hosts are operators (status detail, drain).
admin_networks = ["198.18.0.0/15", "127.0.0.0/8", "::1/128"]

[rtc]
listen_ip = "$ip"
port_min = 40000
port_max = 40999
# loadgen and test clients run on the namespaces' network
plain_allowed_networks = ["127.0.0.0/8", "198.18.0.0/15"]

[workers]
count = 1

[cluster]
enabled = true
listen = "$ip:7000"
seeds = [$seeds]
ca = "$certs/ca.pem"
cert = "$certs/$name.pem"
key = "$certs/$name.key"
probe_period_ms = 300
suspect_to_down_ms = 900

# Development only: GET /api/dev-token hands a token to anyone who asks.
[auth]
mode = "dev"

[log]
level = "$level"

$extra
TOML
}
