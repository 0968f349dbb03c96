#!/usr/bin/env bash
# `cmake --install` into a temporary prefix puts the shmchan package into the interpreter's
# site-packages for that prefix; it imports from there (its extension finding libshmchan.so.0
# through its RUNPATH, no LD_LIBRARY_PATH) and streams.
set -euo pipefail
build=$1 python=$2
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
cmake --install "$build" --prefix "$tmp/prefix" >/dev/null
init=$(find "$tmp/prefix" -path '*/shmchan/__init__.py')
[ -n "$init" ] || { echo "no shmchan package under the prefix"; exit 1; }
site=$(dirname "$(dirname "$init")")
[ -f "$site/shmchan/__init__.pyi" ] && [ -f "$site/shmchan/py.typed" ] || { echo "stubs not installed"; exit 1; }
cd "$tmp"
env -u LD_LIBRARY_PATH PYTHONPATH="$site" "$python" -c '
import shmchan, sys
assert shmchan.__file__.startswith(sys.argv[1]), shmchan.__file__
ch = shmchan.create_channel(1 << 16)
ch.writer.write(b"installed")
ch.writer.close()
assert ch.reader.read_all() == b"installed"
print("installed python module:", shmchan.__file__)
' "$tmp/prefix"
