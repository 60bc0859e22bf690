# shellcheck shell=bash
# Several "hosts" on one machine, sealed off from the outside: network
# namespaces on a private bridge, for the multi-node end-to-end tests.
# Sourced (not run) by scripts/e2e-cluster.sh and later cluster tests.
#
# Typical use:
#
#   source scripts/lib/netns.sh
#   netns_reexec MY_TEST_INNER "$0" "$@"     # once, at the top: private net+mount+pid ns
#   netns_base 198.18.0.254/24               # lo up, tmpfs /run, bridge br0 (outer address)
#   netns_add_host n1 198.18.0.1/24          # namespace n1, veth vn1 <-> eth0 on br0
#   netns_seal_check 198.18.0.254 -- n1 198.18.0.1   # no default route, only these addresses
#   ip netns exec n1 CMD ...                 # run a process "on" n1
#   netns_cut n1 / netns_heal n1             # partition n1 from the bridge and back
#
# The outer namespace (where this script keeps running) is on the bridge too,
# through br0's own address, so clients started here reach every host.
# Nothing is routed anywhere else: no namespace gets a default route, and
# IPv6 is off everywhere (no link-local addresses to offer as candidates).
# Everything made here disappears with the outer namespaces when the script
# ends (the PID namespace also ends every process it started).

NETNS_BRIDGE="${NETNS_BRIDGE:-br0}"
NETNS_HOSTS=()

netns_log() { echo "netns: $*" >&2; }

# True once we are inside the private namespaces set up by netns_reexec.
netns_inside() { [[ "${!1:-0}" == 1 ]]; }

# netns_reexec MARKER SCRIPT [ARGS...]
# Unless $MARKER is 1, re-executes SCRIPT under a private network, mount and
# PID namespace (with its own /proc, mount propagation private) with
# MARKER=1 exported; never returns in that case. Returns when already inside.
# SCRIPT runs as the PID namespace's init: when it exits, every process it
# started is killed; and if `unshare` itself is killed (a CI timeout, say),
# SCRIPT is killed with it (--kill-child), which ends the whole namespace.
netns_reexec() {
  local marker="$1"; shift
  if netns_inside "$marker"; then return 0; fi
  command -v unshare >/dev/null || { netns_log "unshare not found (util-linux)"; return 1; }
  command -v ip >/dev/null || { netns_log "ip not found (iproute2)"; return 1; }
  export "$marker=1"
  exec unshare -n -m -p -f --kill-child --mount-proc --propagation private -- bash "$@"
}

# Disables IPv6 in the current network namespace (new links inherit `default`).
netns_no_ipv6() {
  sysctl -qw net.ipv6.conf.all.disable_ipv6=1 net.ipv6.conf.default.disable_ipv6=1 2>/dev/null \
    || netns_log "could not disable IPv6 here (continuing)"
}

# netns_base ADDR/PREFIX
# In the fresh outer namespace: loopback up, a private /run (so `ip netns`
# can keep its mounts there), and the bridge with the given address.
netns_base() {
  local addr="$1"
  ip link set lo up || return 1
  netns_no_ipv6
  mount -t tmpfs -o mode=0755 none /run || { netns_log "cannot mount a tmpfs on /run"; return 1; }
  mkdir -p /run/netns || return 1
  ip link add "$NETNS_BRIDGE" type bridge || return 1
  # Forward at once: no STP listening delay on the ports.
  ip link set "$NETNS_BRIDGE" type bridge stp_state 0 forward_delay 0 2>/dev/null || true
  ip addr add "$addr" dev "$NETNS_BRIDGE" || return 1
  ip link set "$NETNS_BRIDGE" up || return 1
}

# netns_add_host NAME ADDR/PREFIX
# A namespace NAME with loopback up and one veth end `eth0` carrying ADDR;
# the other end, v<NAME>, is a port of the bridge.
netns_add_host() {
  local name="$1" addr="$2"
  ip netns add "$name" || return 1
  ip netns exec "$name" sysctl -qw net.ipv6.conf.all.disable_ipv6=1 net.ipv6.conf.default.disable_ipv6=1 2>/dev/null \
    || netns_log "could not disable IPv6 in $name (continuing)"
  ip -n "$name" link set lo up || return 1
  ip link add "v$name" type veth peer name eth0 netns "$name" || return 1
  ip link set "v$name" master "$NETNS_BRIDGE" || return 1
  ip link set "v$name" up || return 1
  ip -n "$name" addr add "$addr" dev eth0 || return 1
  ip -n "$name" link set eth0 up || return 1
  NETNS_HOSTS+=("$name")
}

# The IPv4 addresses of the current namespace (or of `ip -n NAME`), sorted.
netns_addrs() { # [NAME]
  local n=()
  [[ -n "${1:-}" ]] && n=(-n "$1")
  ip "${n[@]}" -o addr show | awk '{print $4}' | sed 's#/.*##' | sort | tr '\n' ' ' | sed 's/ $//'
}

# netns_seal_check OUTER_ADDR -- NAME ADDR [NAME ADDR...]
# Fails (with a message) unless: no namespace has a default route (v4 or
# v6), the outer namespace has exactly 127.0.0.1 and OUTER_ADDR, and each
# host exactly 127.0.0.1 and its ADDR.
netns_seal_check() {
  local outer="$1"; shift
  [[ "${1:-}" == -- ]] && shift
  local ok=0 got want
  if [[ -n "$(ip route show default)$(ip -6 route show default 2>/dev/null)" ]]; then
    netns_log "outer namespace has a default route"; ok=1
  fi
  got="$(netns_addrs)"; want="$(printf '%s\n' 127.0.0.1 "$outer" | sort | tr '\n' ' ' | sed 's/ $//')"
  if [[ "$got" != "$want" ]]; then netns_log "outer namespace addresses: [$got], want [$want]"; ok=1; fi
  while (($# >= 2)); do
    local name="$1" addr="$2"; shift 2
    if [[ -n "$(ip -n "$name" route show default)$(ip -n "$name" -6 route show default 2>/dev/null)" ]]; then
      netns_log "$name has a default route"; ok=1
    fi
    got="$(netns_addrs "$name")"; want="$(printf '%s\n' 127.0.0.1 "$addr" | sort | tr '\n' ' ' | sed 's/ $//')"
    if [[ "$got" != "$want" ]]; then netns_log "$name addresses: [$got], want [$want]"; ok=1; fi
  done
  return $ok
}

# Partition a host from the bridge, and heal it.
netns_cut() { ip link set "v$1" down; }
netns_heal() { ip link set "v$1" up; }

# netns_wait_tcp NAME_OR_EMPTY HOST PORT SECONDS: wait until a TCP connect works.
netns_wait_tcp() {
  local ns="$1" host="$2" port="$3" secs="$4" i
  local pre=()
  [[ -n "$ns" ]] && pre=(ip netns exec "$ns")
  for ((i = 0; i < secs * 5; i++)); do
    "${pre[@]}" bash -c "exec 3<>/dev/tcp/$host/$port" 2>/dev/null && return 0
    sleep 0.2
  done
  return 1
}
