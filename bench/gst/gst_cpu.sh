#!/usr/bin/env bash
# Whole-process CPU, page faults and context switches of each gst-launch-1.0 of one variant
# (perf stat; start-up included), per frame: the split between producer and consumer that
# gst_bench.sh's window does not give. A/B runs: PLUGIN_DIR=..., SHMCHAN_LOAN_CLAIM=...
#   bench/gst/gst_cpu.sh inprocess|shmchan|shm 4k|1080p [shmchansink options, e.g. capacity=67108864]
set -u
v=$1 c=$2; shift 2
export GST_PLUGIN_PATH=${PLUGIN_DIR:-$(cd "$(dirname "$0")/../.." && pwd)/build/gstreamer}
d=$(mktemp -d)
trap 'rm -rf "$d"' EXIT
case $c in
  4k) caps="video/x-raw,format=RGBA,width=3840,height=2160,framerate=30/1"; n=${FRAMES:-300}; shm_size=$((33177600 * 8)) ;;
  1080p) caps="video/x-raw,format=I420,width=1920,height=1080,framerate=30/1"; n=${FRAMES:-3000}; shm_size=$((3110400 * 16)) ;;
  *) echo "usage: $0 inprocess|shmchan|shm 4k|1080p [sink options]" >&2; exit 2 ;;
esac
ev=task-clock,page-faults,context-switches,cpu-migrations
src="videotestsrc num-buffers=$n pattern=black ! $caps"
case $v in
  inprocess) perf stat -e $ev -o "$d/p.stat" gst-launch-1.0 -q $src ! fakesink sync=false > /dev/null 2>&1 ;;
  shmchan)
    perf stat -e $ev -o "$d/p.stat" gst-launch-1.0 -q $src ! shmchansink ref-file="$d/ref" "$@" > /dev/null 2>&1 &
    pp=$!
    perf stat -e $ev -o "$d/c.stat" gst-launch-1.0 -q shmchansrc ref-file="$d/ref" ! fakesink sync=false > /dev/null 2>&1
    wait $pp ;;
  shm)
    # No EOS crosses shmsink: the consumer is stopped once it has (nearly) every frame.
    perf stat -e $ev -o "$d/p.stat" gst-launch-1.0 -q $src ! shmsink socket-path="$d/sock" shm-size=$shm_size \
      wait-for-connection=true sync=false > /dev/null 2>&1 &
    pp=$!
    while [ ! -S "$d/sock" ]; do sleep 0.01; done
    perf stat -e $ev -o "$d/c.stat" gst-launch-1.0 -v shmsrc socket-path="$d/sock" is-live=true ! "$caps" ! \
      fakesink sync=false silent=false > "$d/c.out" 2>&1 &
    cp=$!
    for ((k = 0; k < 3000; k++)); do
      [ "$(grep -c 'last-message = chain' "$d/c.out")" -ge $((n - 40)) ] && break
      sleep 0.1
    done
    sleep 1; kill -INT $(pgrep -P $cp); wait $cp
    # shmsink may keep waiting for its client's last release: stopped after 5 s.
    for ((k = 0; k < 50; k++)); do kill -0 $pp 2>/dev/null || break; sleep 0.1; done
    kill -INT $(pgrep -P $pp) 2>/dev/null; wait $pp ;;
  *) echo "usage: $0 inprocess|shmchan|shm 4k|1080p [sink options]" >&2; exit 2 ;;
esac
for f in p c; do
  [ -f "$d/$f.stat" ] || continue
  awk -v who=$([ $f = p ] && echo producer || echo consumer) -v n=$n '
    /task-clock/ {tc = $1} /page-faults/ {pf = $1} /context-switches/ {cs = $1} /seconds time elapsed/ {el = $1}
    END { gsub(",", "", tc); printf "%-8s %7.0f us CPU/frame  %s page faults  %s context switches  %.2f s\n", who, tc * 1000 / n, pf, cs, el }' "$d/$f.stat"
done
