#!/usr/bin/env bash
# The socket path between two hosts made of network namespaces (testkit/sh/two_hosts.sh: a veth
# pair, a /dev/shm each), beside the same path on one host's loopback, in interleaved rounds:
# `shmchan send` on host A through A's engine, `shmchan recv --transport socket` on host B (veth)
# or on A (loopback). Prints MB/s per round and the median ratio.
# usage: bench/remote/veth_throughput.sh SHMCHAN_CLI [SIZE_MIB=512] [ROUNDS=3]    (as root)
set -uo pipefail
cli=$1 size_mib=${2:-512} rounds=${3:-3}
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
source "$here/../../testkit/sh/two_hosts.sh"

head -c $((size_mib << 20)) /dev/urandom > "$dir/in"
port=$((20000 + $$ % 20000))
on a "$cli" engine --listen "$a_ip:$port" > "$dir/veth-engine.log" 2>&1 &
on a "$cli" engine --listen "127.0.0.1:$port" > "$dir/lo-engine.log" 2>&1 &
for _ in $(seq 100); do grep -q listening "$dir/veth-engine.log" && grep -q listening "$dir/lo-engine.log" && break; sleep 0.1; done

# run HOST URL: send on A, receive on HOST over the socket; prints MB/s.
run() {
  local h=$1 url=$2
  rm -f "$dir/ref"
  on a "$cli" send --engine "$url" --chunk 1048576 "$dir/in" > "$dir/ref" 2> "$dir/send.err" &
  local spid=$!
  for _ in $(seq 100); do [ -s "$dir/ref" ] && break; sleep 0.05; done
  local t0 t1; t0=$(date +%s.%N)
  on "$h" "$cli" recv --engine "$url" --transport socket -o /dev/null - < "$dir/ref" 2> "$dir/recv.err" || { echo "recv failed: $(cat "$dir/recv.err")" >&2; }
  t1=$(date +%s.%N)
  wait "$spid"
  echo "$size_mib $t0 $t1" | awk '{ printf "%.0f", $1 * 1048576 / ($3 - $2) / 1e6 }'
}
veth=() lo=()
for r in $(seq "$rounds"); do
  v=$(run b "ws://$a_ip:$port"); l=$(run a "ws://127.0.0.1:$port")
  veth+=("$v"); lo+=("$l")
  echo "round $r: veth (A -> B) $v MB/s, loopback (A -> A) $l MB/s"
done
median() { printf '%s\n' "$@" | sort -n | awk '{ a[NR] = $1 } END { print a[int((NR + 1) / 2)] }'; }
mv=$(median "${veth[@]}") ml=$(median "${lo[@]}")
echo "median: veth $mv MB/s, loopback $ml MB/s, veth/loopback $(awk -v a="$mv" -v b="$ml" 'BEGIN { printf "%.2f", a / b }')"
