#!/usr/bin/env bash
# Harp's NAT lab: a small internet in Linux network namespaces, for the traversal tests.
#
#                 <P>-relay  192.0.2.10            public host (harp relay)
#                      |
#   <P>-net:  bridge "inet", 192.0.2.0/24 (TEST-NET-1: never routed anywhere)
#              |                         |
#   <P>-ra  wan 192.0.2.11          <P>-rb  wan 192.0.2.12     home routers: NAT + stateful firewall
#           lan 10.0.1.1/24                 lan 10.0.2.1/24
#            |          |                    |
#   <P>-a1 10.0.1.2  <P>-a2 10.0.1.3     <P>-b1 10.0.2.2       peers (a1 and a2 share a LAN)
#
# Every interface lives inside a lab namespace: no packet can leave for a real network.
# The routers' firewall drops unsolicited inbound traffic, as home routers do; without it,
# Linux conntrack gives the later outbound packet another port and hole punching fails.
#
# Usage (root):  lab.sh up P NAT_A NAT_B | down P | exec P NODE CMD... |
#                nat P A|B MODE | block-udp P A|B | loss P A|B PERCENT | cut P A|B | restore P A|B |
#                delay P A|B MS   (each way, on the router's uplink: a user-space delay line,
#                                  delayline.py, as this kernel has no netem)
# NAT modes: cone (masquerade: keeps the source port, endpoint-independent mapping)
#            symmetric (masquerade fully-random: a new port for every destination)
set -euo pipefail

cmd=${1:?usage: lab.sh up|down|exec|nat|block-udp|loss|cut|restore PREFIX ...}
P=${2:?prefix}
shift 2

ns() { echo "$P-$1"; }
inns() { local n; n=$(ns "$1"); shift; ip netns exec "$n" "$@"; }

new_ns() {
  ip netns add "$(ns "$1")"
  inns "$1" ip link set lo up
  inns "$1" sysctl -qw net.ipv6.conf.all.disable_ipv6=1
  inns "$1" sysctl -qw net.ipv6.conf.default.disable_ipv6=1
  # Frames switched by a bridge must not go through the routers' IP firewall (that happens
  # when the br_netfilter module is loaded, as Docker does): it would drop LAN multicast.
  inns "$1" sysctl -qw net.bridge.bridge-nf-call-iptables=0 2>/dev/null || true
}

# link NODE1 IF1 NODE2 IF2: a veth pair created directly inside the two namespaces
link() {
  ip link add "$2" netns "$(ns "$1")" type veth peer name "$4" netns "$(ns "$3")"
  inns "$1" ip link set "$2" up
  inns "$3" ip link set "$4" up
}

set_nat() { # ROUTER MODE
  local r=$1 mode=$2 masq
  case $mode in
    cone) masq="masquerade" ;;
    symmetric) masq="masquerade fully-random" ;;
    *) echo "unknown NAT mode $mode" >&2; exit 2 ;;
  esac
  inns "$r" nft delete table ip harpnat 2>/dev/null || true
  inns "$r" nft delete table inet harpfw 2>/dev/null || true
  inns "$r" nft -f - <<NFT
table ip harpnat {
  chain postrouting {
    type nat hook postrouting priority srcnat;
    oifname "wan" $masq
  }
}
table inet harpfw {
  chain input {
    type filter hook input priority filter; policy drop;
    ct state established,related accept
    iifname { "lo", "lan" } accept
  }
  chain forward {
    type filter hook forward priority filter; policy drop;
    ct state established,related accept
    iifname "lan" oifname "wan" accept
  }
}
NFT
}

router() { # NAME WAN_IP LAN_NET PEER...
  local r=$1 wan=$2 net=$3; shift 3
  new_ns "$r"
  inns "$r" sysctl -qw net.ipv4.ip_forward=1
  link "$r" wan net "p$r"
  inns net ip link set "p$r" master inet
  inns "$r" ip addr add "$wan/24" dev wan
  # No IGMP querier runs here: without snooping, the bridge floods multicast (mDNS) to the LAN.
  inns "$r" ip link add lan type bridge mcast_snooping 0
  inns "$r" ip addr add "$net.1/24" dev lan
  inns "$r" ip link set lan up
  local host=2 peer
  for peer in "$@"; do
    new_ns "$peer"
    link "$peer" eth0 "$r" "l$peer"
    inns "$r" ip link set "l$peer" master lan
    inns "$peer" ip addr add "$net.$host/24" dev eth0
    inns "$peer" ip route add default via "$net.1"
    # mDNS: the LAN is a broadcast domain; make sure multicast can go out of eth0.
    inns "$peer" ip link set eth0 multicast on
    host=$((host + 1))
  done
}

down() {
  local n pid
  for n in a1 a2 b1 ra rb relay net; do
    ip netns list | grep -qw "^$(ns $n)" || continue
    for pid in $(ip netns pids "$(ns $n)" 2>/dev/null); do kill -9 "$pid" 2>/dev/null || true; done
    ip netns del "$(ns $n)" 2>/dev/null || true
  done
}

case $cmd in
  up)
    down
    new_ns net
    inns net ip link add inet type bridge
    inns net ip link set inet up
    new_ns relay
    link relay eth0 net prelay
    inns net ip link set prelay master inet
    inns relay ip addr add 192.0.2.10/24 dev eth0
    router ra 192.0.2.11 10.0.1 a1 a2
    router rb 192.0.2.12 10.0.2 b1
    set_nat ra "${1:-cone}"
    set_nat rb "${2:-cone}"
    ;;
  down) down ;;
  exec) node=$1; shift; inns "$node" "$@" ;;
  nat) set_nat "r${1,,}" "$2" ;;
  block-udp)
    inns "r${1,,}" nft -f - <<NFT
table inet harpblock {
  chain forward {
    type filter hook forward priority -5;
    meta l4proto udp drop
  }
}
NFT
    ;;
  loss)
    per_mille=$(( $2 * 10 ))
    inns "r${1,,}" nft -f - <<NFT
table inet harploss {
  chain forward {
    type filter hook forward priority -10;
    numgen random mod 1000 < $per_mille drop
  }
}
NFT
    ;;
  delay)
    r="r${1,,}" ms=$2
    # The delay line re-sends the frames it reads: every frame on the path must be a real
    # one, with its checksums filled in, so segmentation, receive and checksum offloads go
    # off on every lab interface (else the far end drops what it re-sent: bad checksums).
    for n in a1 a2 b1 ra rb relay net; do
      for ifc in $(inns "$n" ls /sys/class/net); do
        [ "$ifc" = lo ] && continue
        inns "$n" ethtool -K "$ifc" tx off rx off >/dev/null 2>&1 || true
        inns "$n" ethtool -K "$ifc" gro off gso off tso off tx-udp-segmentation off >/dev/null 2>&1 ||
          inns "$n" ethtool -K "$ifc" gro off gso off tso off >/dev/null 2>&1 || true
      done
    done
    # The router's uplink leaves the "internet" bridge; the delay line joins it to a new port.
    inns net ip link set "p$r" nomaster
    inns net ip link add "x$r" type veth peer name "y$r"
    inns net ip link set "y$r" master inet
    inns net ip link set "x$r" up
    inns net ip link set "y$r" up
    for ifc in "p$r" "x$r" "y$r"; do
      inns net ethtool -K "$ifc" tx off rx off >/dev/null 2>&1 || true
      inns net ethtool -K "$ifc" gro off gso off tso off tx-udp-segmentation off >/dev/null 2>&1 || true
    done
    setsid ip netns exec "$(ns net)" python3 "$(dirname "$0")/delayline.py" "p$r" "x$r" "$ms" \
      </dev/null >/dev/null 2>&1 &
    ;;
  cut) inns "r${1,,}" ip link set wan down ;;
  restore) inns "r${1,,}" ip link set wan up ;;
  *) echo "unknown command $cmd" >&2; exit 2 ;;
esac
