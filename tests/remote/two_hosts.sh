#!/usr/bin/env bash
# Issue 14: a second host, on this machine. Two network namespaces joined by a veth pair, with
# private addresses of this test's choosing, each with its own mount namespace and its own
# tmpfs on /dev/shm: host B cannot see host A's segments, as a real second machine cannot.
# Host A runs the engine and a C++ worker; host B a C++ worker and a stock Node SDK worker,
# both connected to A's engine. The seed flow runs both ways; `automatic` must take the socket
# on B (the segment is not there) and shared memory on A; B killed mid-stream must be reported
# on A. All of it over ws:// and again over wss:// (the engine's certificate for A's address,
# from a CA the test makes); B without that CA is refused with the cause. No packet leaves the
# two namespaces.
# usage: two_hosts.sh SHMCHAN_CLI SEED_PEER INTEROP_DIR     (exit 77: skipped, cannot make namespaces)
set -uo pipefail
cli=$1 peer=$2 interop=$3
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=../../testkit/sh/two_hosts.sh
source "$here/../../testkit/sh/two_hosts.sh"

# The engine's certificate names A's private address (an IP SAN); B trusts the test's CA
# (SHMCHAN_TLS_CA for C++, NODE_EXTRA_CA_CERTS for Node), exported only for the wss:// pass.
bash "$here/../../testkit/sh/tls_certs.sh" "$dir/certs" "$a_ip" || { echo "FAIL: no test certificates"; exit 1; }

fail=0
# run_pass ws|wss: the whole flow against an engine on A serving that scheme.
run_pass() {
local scheme=$1 tls=()
local port=$((20000 + $$ % 20000 + ${#scheme} - 2))
url="$scheme://$a_ip:$port"
echo "--- over $scheme://"
if [ "$scheme" = wss ]; then
  tls=(--tls-cert "$dir/certs/server.pem" --tls-key "$dir/certs/server.key")
  export SHMCHAN_TLS_CA="$dir/certs/ca.pem" NODE_EXTRA_CA_CERTS="$dir/certs/ca.pem"
fi
on a "$cli" engine --listen "$a_ip:$port" "${tls[@]}" > "$dir/engine.log" 2>&1 &
local engine_pid=$!
for _ in $(seq 100); do grep -q listening "$dir/engine.log" && break; sleep 0.1; done
grep -q "listening on $url" "$dir/engine.log" || { echo "FAIL: engine did not start"; cat "$dir/engine.log"; exit 1; }
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
kill_hosts  # the engine and the workers of this pass
wait "$wa_pid" "$nb_pid" "$engine_pid" 2>/dev/null
}

run_pass ws
run_pass wss
# Without the CA, B's C++ worker refuses A's certificate, and says why.
unset SHMCHAN_TLS_CA
on a "$cli" engine --listen "$a_ip:0" --tls-cert "$dir/certs/server.pem" --tls-key "$dir/certs/server.key" \
  > "$dir/engine.log" 2>&1 &
engine_pid=$!
for _ in $(seq 100); do grep -q listening "$dir/engine.log" && break; sleep 0.1; done
url=$(grep -o 'wss://[^ ]*' "$dir/engine.log")
out=$(on b "$peer" caller "$url" b::none 1 2>&1)
if grep -q "certificate verify failed" <<<"$out"; then echo "ok   B without the test CA: $(head -c 200 <<<"$out")"
else echo "FAIL B without the test CA: $out"; fail=1; fi
kill_hosts
# Nothing the test started may outlive it (each engine and worker names A's address).
for _ in $(seq 20); do pgrep -f "$a_ip" >/dev/null || break; sleep 0.1; done
if pgrep -af "$a_ip"; then echo "FAIL: processes outlived the test"; fail=1; fi
exit $fail
