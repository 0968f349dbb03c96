#!/usr/bin/env bash
# Frames between two gst-launch-1.0 processes (issue 13): shmchansink/shmchansrc against
# shmsink/shmsrc, and the same pipeline in one process as the ceiling; interleaved rounds,
# frames delivered counted for each, CPU per frame = utime + stime of both processes.
#   bench/gst/gst_bench.sh [--rounds N] [--plugin-dir DIR] [--cases "1080p-i420 4k-rgba"] [--frames N] [--capacity BYTES]...
# Each --capacity adds a variant shmchan:BYTES (shmchansink capacity=BYTES) run beside the
# default ring (shmchan), in the same rounds. Prints one line per run and a summary (medians)
# per case and variant.
set -uo pipefail
rounds=3
plugin_dir=$(cd "$(dirname "$0")/../.." && pwd)/build/gstreamer
cases="1080p-i420 4k-rgba"
frames_override=
variants="shmchan"
while (($#)); do
  case $1 in
    --rounds) rounds=$2; shift 2 ;;
    --plugin-dir) plugin_dir=$2; shift 2 ;;
    --cases) cases=$2; shift 2 ;;
    --frames) frames_override=$2; shift 2 ;;
    --capacity) variants+=" shmchan:$2"; shift 2 ;;  # beside the default ring (auto: at least 4 frames)
    *) echo "usage: $0 [--rounds N] [--plugin-dir DIR] [--cases LIST] [--frames N] [--capacity BYTES]..." >&2; exit 2 ;;
  esac
done
[ -e "$plugin_dir/libgstshmchan.so" ] || { echo "no libgstshmchan.so in $plugin_dir (build it, or --plugin-dir)" >&2; exit 2; }
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
export GST_PLUGIN_PATH=$plugin_dir GST_REGISTRY=$dir/registry.bin

# Case parameters: caps, frame bytes, frames per run.
params() {
  case $1 in
    1080p-i420) caps="video/x-raw,format=I420,width=1920,height=1080,framerate=30/1"; bytes=3110400; n=3000; shm_frames=16 ;;
    4k-rgba) caps="video/x-raw,format=RGBA,width=3840,height=2160,framerate=30/1"; bytes=33177600; n=300; shm_frames=8 ;;
    *) echo "unknown case $1" >&2; exit 2 ;;
  esac
  [ -z "$frames_override" ] || n=$frames_override
}

# Runs "$@" in the background: its output in $1.out, its pid in $1.pid.
start() {
  local tag=$1; shift
  "$@" > "$tag.out" 2>&1 &
  echo $! > "$tag.pid"
}
frames_of() { grep -c 'last-message = chain' "$1.out"; }
now() { date +%s.%N; }
calc() { awk "BEGIN { print ($*) }"; }
hz=$(getconf CLK_TCK)
# utime + stime of the given processes, in clock ticks (/proc/PID/stat fields 14 and 15);
# nothing when one of them has exited: a zombie's stat holds only its main thread's time, and
# a reaped one has none (either read as a negative CPU/frame before).
cpu_ticks() {
  local p t=0 v
  for p; do v=$(awk '$3 != "Z" {print $14 + $15}' "/proc/$p/stat" 2>/dev/null) && [ -n "$v" ] || return; t=$((t + v)); done
  echo $t
}
# Waits up to $2 s for process $1 (a start tag) to exit, then stops it (SIGINT, then SIGKILL).
finish() {
  local pid i; pid=$(cat "$1.pid")
  for ((i = 0; i < $2 * 20; i++)); do kill -0 "$pid" 2>/dev/null || break; sleep 0.05; done
  kill -INT "$pid" 2>/dev/null; sleep 0.2; kill -9 "$pid" 2>/dev/null
  wait "$pid" 2>/dev/null
}

src_gen() { echo "videotestsrc num-buffers=$n pattern=black ! $caps"; }
count_sink="fakesink silent=false sync=false"

# One run of a variant -> "frames fps us_cpu_per_frame stalled". The window measured runs from
# the first frame the counting sink sees to 90% of them (process start and teardown excluded:
# every process is still running at both ends of it);
# CPU is that of every process of the variant over the window; a run with no new frame for
# 5 s is stalled.
run_variant() {
  local v=$1 p=$dir/p c=$dir/c
  rm -f "$dir"/p.* "$dir"/c.* "$dir/ref" "$dir/sock"
  case $v in
    inprocess)
      start "$p" gst-launch-1.0 -v $(src_gen) ! $count_sink
      c=$p ;;
    shmchan*)
      local opts=; [ "$v" = shmchan ] || opts="capacity=${v#shmchan:}"
      start "$p" gst-launch-1.0 $(src_gen) ! shmchansink ref-file="$dir/ref" $opts
      start "$c" gst-launch-1.0 -v shmchansrc ref-file="$dir/ref" ! $count_sink ;;
    shm)
      # With room for 4 frames shmsink stalled part way here; shm_frames frames did not.
      start "$p" gst-launch-1.0 $(src_gen) ! shmsink socket-path="$dir/sock" shm-size=$((bytes * shm_frames)) \
                                 wait-for-connection=true sync=false
      while [ ! -S "$dir/sock" ]; do sleep 0.01; done
      start "$c" gst-launch-1.0 -v shmsrc socket-path="$dir/sock" is-live=true ! "$caps" ! $count_sink ;;
  esac
  local pids=("$(cat "$p.pid")") got=0 last=0 since f0= t0 c0 t1= c1 f1 stalled=0 ts cs
  [ "$c" = "$p" ] || pids+=("$(cat "$c.pid")")
  since=$(now)
  while :; do
    got=$(frames_of "$c") ts=$(now)
    # The window ends at the last sample taken while every process still ran: an exited
    # process's CPU time can no longer be read (it used to read as 0, a negative CPU/frame).
    cs=$(cpu_ticks "${pids[@]}")
    [ -n "$cs" ] || break
    if [ -z "$f0" ] && [ "$got" -gt 0 ]; then f0=$got t0=$ts c0=$cs; fi
    [ -n "$f0" ] && t1=$ts c1=$cs f1=$got
    [ "$got" -ge $((n * 9 / 10)) ] && break
    if [ "$got" -ne "$last" ]; then last=$got since=$ts
    elif [ "$(calc "$ts - $since > 5")" = 1 ]; then stalled=1; break; fi
    sleep 0.02
  done
  # shmchan and one process end with EOS; no EOS crosses shmsink (and it waits for its client
  # to release the last buffer), so that consumer is stopped once it has everything.
  if [ "$v" = shm ] || [ $stalled = 1 ]; then finish "$c" 1; else finish "$c" 10; fi
  finish "$p" 5
  got=$(frames_of "$c")
  if [ -z "$f0" ] || [ -z "$t1" ] || [ "$f1" -le "$f0" ]; then echo "$got 0 0 $stalled"; return; fi
  echo "$got $(calc "($f1 - $f0) / ($t1 - $t0)") $(calc "($c1 - $c0) / $hz * 1000000 / ($f1 - $f0)") $stalled"
}

median() { sort -g | awk '{a[NR]=$1} END {if (!NR) print "nan"; else print (NR % 2) ? a[(NR + 1) / 2] : (a[NR / 2] + a[NR / 2 + 1]) / 2}'; }

results=$dir/results
: > "$results"
gst-inspect-1.0 shmchansink > /dev/null  # the registry, once, outside the runs
echo "gst_bench: $(nproc) cores, $(gst-launch-1.0 --version | sed -n 2p), rounds $rounds"
for c in $cases; do
  params "$c"
  for ((r = 1; r <= rounds; r++)); do
    for v in $variants shm inprocess; do
      read -r frames fps us stalled < <(run_variant "$v")
      note=""
      [ "$stalled" = 1 ] && note="  STALLED (stopped; not in the medians)"
      printf '%-11s %-17s round %d: %5d/%d frames  %8.1f frames/s  %8.1f us CPU/frame%s\n' "$c" "$v" "$r" "$frames" "$n" "$fps" "$us" "$note"
      echo "$c $v $frames $fps $us $stalled" >> "$results"
    done
  done
done
echo
printf '%-11s %-17s %14s %16s %18s\n' case variant "frames (min)" "frames/s (med)" "us CPU/frame (med)"
for c in $cases; do
  params "$c"
  for v in $variants shm inprocess; do
    f=$(awk -v c="$c" -v v="$v" '$1 == c && $2 == v {print $3}' "$results" | sort -g | head -1)
    fps=$(awk -v c="$c" -v v="$v" '$1 == c && $2 == v && !$6 {print $4}' "$results" | median)
    us=$(awk -v c="$c" -v v="$v" '$1 == c && $2 == v && !$6 {print $5}' "$results" | median)
    st=$(awk -v c="$c" -v v="$v" '$1 == c && $2 == v && $6 {n++} END {print n + 0}' "$results")
    printf '%-11s %-17s %9d/%-4d %16.1f %18.1f   stalled %d of %d\n' "$c" "$v" "$f" "$n" "$fps" "$us" "$st" "$rounds"
  done
done
