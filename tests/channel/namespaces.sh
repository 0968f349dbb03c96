#!/usr/bin/env bash
# Issue 10: streams between processes in different PID namespaces that share /dev/shm (as
# containers of one pod do), with `shmchan gc` run from a third namespace in the middle, and a
# reader whose namespace has no /proc. Liveness must come from the kernel (the ends' locks on
# the segment file), not from pids, which mean nothing across namespaces.
# usage: namespaces.sh SHMCHAN_CLI        (exit 77: skipped, namespaces not permitted here)
set -uo pipefail
cli=$1
if ! unshare --pid --fork --mount-proc true 2>/dev/null; then
  echo "skipped: cannot create PID namespaces here (needs root or user namespaces)"
  exit 77
fi
dir=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null; rm -rf "$dir"' EXIT
head -c $((24 << 20)) /dev/urandom > "$dir/in"

# A command in a PID namespace of its own (with its own /proc), or with no /proc at all.
in_ns()    { unshare --pid --fork --mount-proc "$@"; }
in_noproc(){ unshare --pid --fork --mount sh -c 'umount -l /proc 2>/dev/null; [ ! -e /proc/self ] || exit 3; exec "$@"' sh "$@"; }
# An ASan build cannot run without /proc: the runtime reads its options from /proc/self/environ
# and LeakSanitizer stops the threads through /proc at exit. The plain build covers those rows.
asan=0
grep -q __asan_init "$cli" && asan=1
on_host()  { "$@"; }

fail=0
# $1 $2: how to run the writer and the reader.
stream() {
  local w=$1 r=$2 name="writer $1, reader $2"
  rm -f "$dir/out" "$dir/ref"
  # A 1 MiB ring: the writer blocks on it, so the channel is live while gc looks at it.
  $w "$cli" send --capacity 1048576 "$dir/in" > "$dir/ref" 2> "$dir/send.err" &
  local spid=$!
  for _ in $(seq 100); do [ -s "$dir/ref" ] && break; sleep 0.1; done
  local id; id=$(sed -n 's/.*"channel_id":"\([^"]*\)".*/\1/p' "$dir/ref")
  if [ -z "$id" ]; then echo "FAIL $name: no ref"; cat "$dir/send.err"; fail=1; return; fi
  # Old enough for any gc, made by a process no other namespace can see by pid.
  touch -d '1 hour ago' "/dev/shm/shmchan-$id"
  in_ns "$cli" gc --min-age 0 > "$dir/gc.out" 2>&1
  if [ ! -e "/dev/shm/shmchan-$id" ]; then echo "FAIL $name: gc in a third namespace removed a live channel"; cat "$dir/gc.out"; fail=1; fi
  sleep 0.3  # the writer is blocked on a full ring meanwhile: it must not take the reader for dead
  $r "$cli" recv -o "$dir/out" - < "$dir/ref" 2> "$dir/recv.err"
  local rrc=$?
  wait "$spid"; local src=$?
  if [ $rrc -ne 0 ] || [ $src -ne 0 ] || ! cmp -s "$dir/in" "$dir/out"; then
    echo "FAIL $name: recv exit $rrc, send exit $src"; cat "$dir/recv.err" "$dir/send.err"; fail=1
  else
    echo "ok   $name: $(stat -c %s "$dir/out") bytes, every byte equal"
  fi
  [ -e "/dev/shm/shmchan-$id" ] && { echo "FAIL $name: segment left behind"; fail=1; }
}
stream in_ns in_ns
stream on_host in_ns
stream in_ns on_host
if [ $asan = 1 ]; then
  echo "skip writer in_ns, reader in_noproc (and the reverse): an ASan build needs /proc"
else
  stream in_ns in_noproc
  stream in_noproc in_ns
fi
exit $fail
