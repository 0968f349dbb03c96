#!/usr/bin/env bash
# The ABI of libshmchan.so against a release's dump (abidw/abidiff from Debian's abigail-tools).
#   tools/abi-check.sh dump LIB OUT.abi       writes LIB's ABI (the C ABI's types from shmchan.h)
#   tools/abi-check.sh check OLD.abi LIB      compares LIB with a release's dump
# A release commits its dump as abi/libshmchan.so.<MAJOR>-<VERSION>.abi; `check` then runs in
# CI against the newest one of the same MAJOR (there is none yet: 0.1.0 is the first). Exit
# status: 0 compatible, 1 usage or tool failure, 2 an incompatible change (a removed symbol, a
# changed struct layout, ...); added functions pass.
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
header=$here/include/shmchan/shmchan.h
case "${1:-}" in
  dump)
    [ $# -eq 3 ] || { echo "usage: abi-check.sh dump LIB OUT.abi" >&2; exit 1; }
    abidw --header-file "$header" --drop-private-types --out-file "$3" "$2"
    echo "ABI of $2 written to $3" ;;
  check)
    [ $# -eq 3 ] || { echo "usage: abi-check.sh check OLD.abi LIB" >&2; exit 1; }
    # Added functions are compatible and left out (--no-added-syms), as are fields appended to
    # the sized structs (abi-suppressions.ini); any other difference
    # (a removed or changed function, a struct's size or a member's offset, an enum value) is
    # not. abidiff's status is a bit field: 1 error, 2 usage, 4 a change, 8 an incompatible one
    # (only removals get 8, so a changed layout shows as 4: both fail here).
    set +e
    abidiff --no-added-syms --suppressions "$here/tools/abi-suppressions.ini" --hf2 "$header" \
            --drop-private-types "$2" "$3"
    rc=$?
    set -e
    if (( rc & 3 )); then echo "abidiff failed ($rc)" >&2; exit 1; fi
    if (( rc & 12 )); then echo "INCOMPATIBLE ABI change against $2 (above)" >&2; exit 2; fi
    echo "ABI compatible with $2" ;;
  *) echo "usage: abi-check.sh dump LIB OUT.abi | check OLD.abi LIB" >&2; exit 1 ;;
esac
