#!/usr/bin/env bash
# Issue 14: a second host, on this machine. Two network namespaces joined by a veth pair, with
# private addresses of this test's choosing, each with its own mount namespace and its own
# tmpfs on /dev/shm: host B cannot see host A's segments, as a real second machine cannot.
# Host A runs the engine and a C++ worker; host B a C++ worker and a stock Node SDK worker,
# both connected to A's engine. The seed flow runs both ways; `automatic` must take the socket
# on B (the segment is not there) and shared memory on A; B killed mid-stream must be reported
# on A. No packet leaves the two namespaces.
# usage: two_hosts.sh SHMCHAN_CLI SEED_PEER INTEROP_DIR     (exit 77: skipped, cannot make namespaces)
set -uo pipefail
cli=$1 peer=$2 interop=$3
tag=shmchan$$
if ! ip netns add "${tag}a" 2>/dev/null; then
  echo "skipped: cannot create network namespaces here (needs root and iproute2)"
  exit 77
fi
ip netns add "${tag}b"
dir=$(mktemp -d)
hosts=()
cleanup() {
  for p in "${hosts[@]}"; do pkill -KILL -P "$p" 2>/dev/null; kill -KILL "$p" 2>/dev/null; done
  kill $(jobs -p) 2>/dev/null
  ip netns del "${tag}a" 2>/dev/null
  ip netns del "${tag}b" 2>/dev/null
  rm -rf "$dir"
}
trap cleanup EXIT

# 10.X.Y.0/30 inside the namespaces only: the veth pair is their only link.
net="10.$((200 + $$ % 50)).$(( ($$ / 50) % 250 ))"
a_ip="$net.1" b_ip="$net.2"
ip link add "${tag}va" type veth peer name "${tag}vb"
ip link set "${tag}va" netns "${tag}a"
ip link set "${tag}vb" netns "${tag}b"
ip -n "${tag}a" addr add "$a_ip/30" dev "${tag}va"
ip -n "${tag}b" addr add "$b_ip/30" dev "${tag}vb"
for h in a b; do
  ip -n "${tag}$h" link set lo up
  ip -n "${tag}$h" link set "${tag}v$h" up
done

# Each host: a mount namespace holding a tmpfs of its own on /dev/shm, kept by a sleeper; its
# processes enter it and the host's network namespace.
for h in a b; do
  unshare --mount --propagation private sh -c 'mount -t tmpfs -o size=512m tmpfs /dev/shm && exec sleep 100000' &
  hosts+=($!)
done
host_pid() { if [ "$1" = a ]; then echo "${hosts[0]}"; else echo "${hosts[1]}"; fi; }
on() {  # on a|b CMD...: run CMD on that host
  local h=$1; shift
  nsenter -t "$(host_pid "$h")" -m --net="/run/netns/${tag}$h" "$@"
}
sleep 0.3
on a sh -c 'touch /dev/shm/shmchan-probe-a' && on b sh -c '[ ! -e /dev/shm/shmchan-probe-a ]' \
  || { echo "FAIL: the two hosts share /dev/shm"; exit 1; }

port=$((20000 + $$ % 20000))
url="ws://$a_ip:$port"
on a "$cli" engine --listen "$a_ip:$port" > "$dir/engine.log" 2>&1 &
for _ in $(seq 100); do grep -q listening "$dir/engine.log" && break; sleep 0.1; done
grep -q listening "$dir/engine.log" || { echo "FAIL: engine did not start"; cat "$dir/engine.log"; exit 1; }

fail=0
# start_worker HOST NAME CMD...: a worker that prints READY when registered.
start_worker() {
  local h=$1 name=$2; shift 2
  on "$h" "$@" > "$dir/$name.out" 2> "$dir/$name.err" &
  eval "${name}_pid=$!"
  for _ in $(seq 100); do grep -q READY "$dir/$name.out" && return 0; sleep 0.1; done
  echo "FAIL: $name did not start"; cat "$dir/$name.out" "$dir/$name.err"; exit 1
}
start_worker a wa "$peer" worker "$url" a::process
start_worker b wb "$peer" worker "$url" b::process
start_worker b nb env III_URL="$url" FUNCTION_ID=b::node node "$interop/seed_worker.mjs"

size=$((64 << 20))
# check NAME HOST FUNCTION READER_TRANSPORT WRITER_TRANSPORT: a C++ caller on HOST.
check() {
  local name=$1 h=$2 fn=$3 want_r=$4 want_w=$5
  local out; out=$(on "$h" "$peer" caller "$url" "$fn" "$size" 2>&1)
  local rc=$? line; line=$(grep '^RESULT' <<<"$out")
  read -r _ bytes sum expect rt wt <<<"$line"
  if [ $rc -ne 0 ] || [ "$bytes" != "$size" ] || [ "$sum" != "$expect" ]; then
    echo "FAIL $name: exit $rc: $out"; fail=1
  elif [ "$rt" != "$want_r" ] || [ "$wt" != "$want_w" ]; then
    echo "FAIL $name: reader took $rt (want $want_r), writer $wt (want $want_w)"; fail=1
  else
    echo "ok   $name: $bytes bytes, checksum equal; reader by $rt, writer by $wt"
  fi
}
# B's reader of a channel A created (through A's engine: its segment is on A).
check "A writes, B's C++ worker reads" a b::process socket shm
# A's reader of B's channel (the engine made it on A: B writes through the socket).
check "B writes, A's C++ worker reads" b a::process shm socket

# The stock Node SDK on B: as the worker (reading A's channel), and as the caller (writing one
# A's worker reads by shared memory).
out=$(on a "$peer" caller "$url" b::node "$size" 2>&1)
if grep -q "^RESULT $size " <<<"$out"; then echo "ok   A writes, B's Node worker reads: $size bytes"
else echo "FAIL A writes, B's Node worker reads: $out"; fail=1; fi
out=$(on b env III_URL="$url" FUNCTION_ID=a::process SIZE=$((8 << 20)) node "$interop/seed_caller.mjs" 2>&1)
if grep -q "\"bytes\":$((8 << 20))" <<<"$out" && grep -q '"transport":"shm"' <<<"$out"; then
  echo "ok   B's Node caller writes, A's C++ worker reads by shm: $((8 << 20)) bytes"
else echo "FAIL B's Node caller writes, A's C++ worker reads: $out"; fail=1; fi

# B's worker killed mid-stream: A's caller must learn it (an error, not a hang).
on a "$peer" caller "$url" b::process $((16 << 30)) > "$dir/kill.out" 2>&1 &
caller=$!
sleep 2
kill -KILL "$wb_pid"
pkill -KILL -f "seed_peer worker $url b::process" 2>/dev/null
ok=0
for _ in $(seq 300); do kill -0 "$caller" 2>/dev/null || { ok=1; break; }; sleep 0.1; done
wait "$caller" 2>/dev/null; rc=$?
if [ $ok -eq 1 ] && [ $rc -ne 0 ] && grep -q '^FAIL' "$dir/kill.out"; then
  echo "ok   B's worker killed mid-stream: A's caller reports $(head -c 200 "$dir/kill.out")"
else
  echo "FAIL B's worker killed mid-stream: caller exit $rc (ended: $ok): $(cat "$dir/kill.out")"; fail=1
fi

[ $fail -eq 0 ] || { echo "--- engine log"; tail -20 "$dir/engine.log"; }
exit $fail
