#!/usr/bin/env bash
# The C ABI across processes, every byte checked:
#   run.sh program STREAM CLI        with a stream program built in the tree
#   run.sh pkg-config BUILD SRC      installs BUILD into a temporary prefix, builds stream.c there
#                                    with `cc $(pkg-config --cflags --libs shmchan)`, runs it
#                                    (and docs/c-api.md's example)
set -euo pipefail
mode=$1
tmp=$(mktemp -d)
cleanup() { [ -n "${send_pid:-}" ] && kill "$send_pid" 2>/dev/null; rm -rf "$tmp"; }
trap cleanup EXIT
case "$mode" in
  program) stream=$2 cli=$3 ;;
  pkg-config)
    build=$2 src=$3
    cmake --install "$build" --prefix "$tmp/prefix" >/dev/null
    pcdir=$(dirname "$(find "$tmp/prefix" -name shmchan.pc)")
    export PKG_CONFIG_PATH=$pcdir
    # shellcheck disable=SC2046  # word splitting of pkg-config's flags is the point
    cc -std=c99 -Wall -Wextra -Wpedantic -Werror -o "$tmp/stream" "$src/stream.c" \
       $(pkg-config --cflags --libs shmchan)
    libdir=$(pkg-config --variable=libdir shmchan)
    export LD_LIBRARY_PATH=$libdir
    readelf -d "$tmp/stream" | grep -q 'NEEDED.*libshmchan.so.0' || { echo "not linked to libshmchan.so.0"; exit 1; }
    stream=$tmp/stream cli=$tmp/prefix/bin/shmchan
    # docs/c-api.md's complete example, built the way it says, relays a file to itself.
    awk '/^```c$/{f=1;n++;next} /^```$/{f=0} f&&n==1' "$src/../../docs/c-api.md" > "$tmp/relay.c"
    # shellcheck disable=SC2046
    cc -std=c99 -Wall -Wextra -Wpedantic -Werror -o "$tmp/relay" "$tmp/relay.c" $(pkg-config --cflags --libs shmchan)
    head -c 3000000 /dev/urandom > "$tmp/relay.in"
    "$tmp/relay" send "$tmp/relay.in" | "$tmp/relay" recv - > "$tmp/relay.out"
    cmp "$tmp/relay.in" "$tmp/relay.out" ;;
  *) echo "usage: run.sh program STREAM CLI | pkg-config BUILD SRC" >&2; exit 2 ;;
esac

# 5 MiB and an odd tail, through a 1 MiB ring: many wraps.
head -c $((5 * 1024 * 1024 + 12345)) /dev/urandom > "$tmp/in"

# shmchan send writes, the C program reads.
mkfifo "$tmp/refs"
"$cli" send --capacity 1M "$tmp/in" > "$tmp/refs" 2>/dev/null &
send_pid=$!
read -r ref < "$tmp/refs"
"$stream" read "$ref" "$tmp/out1"
wait "$send_pid"
send_pid=
cmp "$tmp/in" "$tmp/out1"

# The C program writes, shmchan recv reads.
"$stream" write "$tmp/in" | "$cli" recv -o "$tmp/out2" - 2> "$tmp/recv.err"
cmp "$tmp/in" "$tmp/out2"
grep -q "message: done" "$tmp/recv.err"

"$stream" errors
"$stream" readers
echo "capi: streamed $(stat -c %s "$tmp/in") bytes each way"
