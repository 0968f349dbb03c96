#!/usr/bin/env bash
# Issue 13: shmchansink and shmchansrc in real gst-launch-1.0 pipelines, two processes.
# usage: pipelines.sh CASE PLUGIN_DIR SHMCHAN_CLI
#   frames     frame count, checksums, timestamps, offsets and flags equal to one process
#              (raw video through the pool, VP8 through the copy path, a source that copies)
#   caps       caps changing mid-stream reach the source in order; no capsfilter after it
#   kill-sink  kill -9 of the sink: the source posts an ERROR and exits
#   kill-src   kill -9 of the source: the sink posts an ERROR and exits
#   too-large  a frame larger than the ring: ERROR naming the capacity on both sides
#   stopped    the sink stopped before EOS (SIGINT): the source's ERROR gives the reason
#   socket     through `shmchan engine`, both ends on its socket path
#   fanout     readers=3: three sources in three processes each get every frame unchanged
#   fanout-kill  readers=2, block: a source killed mid-stream; the other and the sink finish
#   live       overflow=drop-oldest: a fast source gets every frame while a SIGSTOPped one does
#              not hold the sink; continued, it resumes with a DISCONT buffer and valid frames
#   late-join  overflow=drop-oldest: a source started mid-stream gets the caps (no capsfilter)
#   ref-index  ref-index beyond the ref file's lines, and readers=2 with engine: clear ERRORs
# Exit 77: skipped (ASan build where libasan cannot be preloaded).
set -uo pipefail
case_name=$1 plugin_dir=$2 cli=$3
dir=$(mktemp -d)
pids=()
cleanup() { for p in "${pids[@]}"; do kill -9 "$p" 2>/dev/null; done; rm -rf "$dir"; }
trap cleanup EXIT
export GST_PLUGIN_PATH=$plugin_dir GST_REGISTRY=$dir/registry.bin GST_DEBUG_NO_COLOR=1
unset GST_PLUGIN_PATH_1_0 SHMCHAN_TRANSPORT

# An ASan-built plugin loads into gst-launch-1.0 only with the ASan runtime first in the process;
# gst-launch's own allocations are not ours to judge (detect_leaks=0).
if grep -q __asan_init "$plugin_dir/libgstshmchan.so"; then
  libasan=$(g++ -print-file-name=libasan.so)
  if [ ! -e "$libasan" ]; then echo "skipped: ASan build and no libasan.so to preload"; exit 77; fi
  export LD_PRELOAD=$libasan ASAN_OPTIONS=detect_leaks=0:abort_on_error=1
fi

fail() { echo "FAIL: $*"; exit 1; }
# Waits up to $2 seconds for process $1 to exit; its status in $rc. Fails when it does not.
wait_exit() {
  local pid=$1 secs=$2 i
  for ((i = 0; i < secs * 10; i++)); do
    if ! kill -0 "$pid" 2>/dev/null; then wait "$pid"; rc=$?; return 0; fi
    sleep 0.1
  done
  [ -z "${out:-}" ] || cat "$out"
  fail "process $pid ($3) still running after $secs s"
}
# Waits (up to 60 s) until the source's output $1 shows a buffer: both sides are connected.
wait_frames() {
  local i
  for ((i = 0; i < 600; i++)); do grep -q 'last-message = chain' "$1" && return 0; sleep 0.1; done
  cat "$1"; fail "no frame reached the source"
}
# Buffers as identity silent=false prints them (size, dts, pts, duration, offsets, flags; not
# GstMeta, which does not travel), and checksumsink's "pts checksum" lines.
chains() { sed -n 's/.*last-message = chain *\**  *([a-z0-9_]*:sink) \(.*\), meta: .*$/\1/p' "$1"; }
sums() { grep -aE '^[0-9]+:[0-9]{2}:[0-9]{2}\.[0-9]{9} [0-9a-f]{40}$' "$1"; }

# The elements' own count of frames moved in place and copied (their INFO line at stop).
export GST_DEBUG=shmchansink:4,shmchansrc:4
copies() { grep -q "$2" "$1" || { grep -a 'frames ' "$1"; fail "$3: expected \"$2\""; }; }

# Runs sink pipeline $1 and source pipeline $2 (both -v) as two processes; outputs in
# $dir/$3.sink and $dir/$3.src; both must exit 0.
two_processes() {
  local sink=$1 src=$2 tag=$3 spid rpid
  rm -f "$dir/ref"
  # shellcheck disable=SC2086
  gst-launch-1.0 -v $sink > "$dir/$tag.sink" 2>&1 & spid=$!; pids+=("$spid")
  # shellcheck disable=SC2086
  gst-launch-1.0 -v $src > "$dir/$tag.src" 2>&1 & rpid=$!; pids+=("$rpid")
  wait_exit "$rpid" 120 "source $tag"; local src_rc=$rc
  wait_exit "$spid" 30 "sink $tag"; local sink_rc=$rc
  [ "$sink_rc" -eq 0 ] || { cat "$dir/$tag.sink"; fail "$tag: the sink exited $sink_rc"; }
  [ "$src_rc" -eq 0 ] || { cat "$dir/$tag.src"; fail "$tag: the source exited $src_rc (EOS must end it cleanly)"; }
  grep -q 'Got EOS from element' "$dir/$tag.src" || fail "$tag: the source did not end with EOS"
}
same() {  # same FILE_A FILE_B WHAT
  cmp -s "$1" "$2" || { diff "$1" "$2" | head -20; fail "$3 differ"; }
  [ -s "$1" ] || fail "$3: none at all"
}

# Starts `gst-launch-1.0 -v $2...` in the background, output in $dir/$1; its pid in $bg_pid.
bg_pid=
launch() {
  local tag=$1; shift
  # shellcheck disable=SC2068
  gst-launch-1.0 -v $@ > "$dir/$tag" 2>&1 & bg_pid=$!; pids+=("$bg_pid")
}
# "offset checksum" per buffer of output $1 (identity's chain line, then checksumsink's line):
# the frame's number and its content, for live streams whose timestamps come from the clock.
by_offset() {
  paste -d' ' <(chains "$1" | sed 's/.*offset: \([0-9]*\),.*/\1/') <(sums "$1" | cut -d' ' -f2)
}
# Lines of $1 not in $2 (both sorted here): none when $1 is a subset.
not_in() { comm -23 <(sort "$1") <(sort "$2"); }

raw="videotestsrc num-buffers=60 pattern=ball ! video/x-raw,format=I420,width=320,height=240,framerate=30/1"
ref="ref-file=$dir/ref"
src_side="identity silent=false ! checksumsink"

case $case_name in
frames)
  # Raw video: upstream renders into the sink's pool (zero copy), the source wraps the ring.
  gst-launch-1.0 -v $raw ! $src_side > "$dir/one" 2>&1 || fail "the one-process pipeline failed"
  two_processes "$raw ! shmchansink $ref" "shmchansrc $ref ! $src_side" raw
  chains "$dir/one" > "$dir/one.chains"; chains "$dir/raw.src" > "$dir/raw.chains"
  sums "$dir/one" > "$dir/one.sums"; sums "$dir/raw.src" > "$dir/raw.sums"
  [ "$(wc -l < "$dir/raw.sums")" -eq 60 ] || fail "raw: $(wc -l < "$dir/raw.sums") frames of 60"
  same "$dir/one.chains" "$dir/raw.chains" "raw: timestamps, offsets or flags"
  same "$dir/one.sums" "$dir/raw.sums" "raw: checksums"
  copies "$dir/raw.sink" "frames in place 60, copied 0" "raw: upstream must render into the ring"
  copies "$dir/raw.src" "frames wrapped 60, copied 0" "raw: the source must wrap the ring"
  # The same with a source that copies every frame (max-held=1).
  two_processes "$raw ! shmchansink $ref" "shmchansrc $ref max-held=1 ! $src_side" copy
  sums "$dir/copy.src" > "$dir/copy.sums"; chains "$dir/copy.src" > "$dir/copy.chains"
  same "$dir/one.sums" "$dir/copy.sums" "max-held=1: checksums"
  same "$dir/one.chains" "$dir/copy.chains" "max-held=1: timestamps, offsets or flags"
  copies "$dir/copy.src" "frames wrapped 0, copied 60" "max-held=1: the source copies"
  # VP8: key and delta frames, DTS; upstream brings its own memory (the sink copies once).
  # Compared across the channel in one run (the encoder need not be deterministic).
  vp8="videotestsrc num-buffers=40 pattern=ball ! video/x-raw,width=320,height=240,framerate=30/1 ! vp8enc keyframe-max-dist=8 deadline=1 ! identity silent=false"
  two_processes "$vp8 ! tee name=t t. ! queue ! shmchansink $ref t. ! queue ! checksumsink" \
                "shmchansrc $ref ! $src_side" vp8
  chains "$dir/vp8.sink" > "$dir/vp8.sink.chains"; chains "$dir/vp8.src" > "$dir/vp8.src.chains"
  sums "$dir/vp8.sink" > "$dir/vp8.sink.sums"; sums "$dir/vp8.src" > "$dir/vp8.src.sums"
  [ "$(wc -l < "$dir/vp8.src.sums")" -eq 40 ] || fail "vp8: $(wc -l < "$dir/vp8.src.sums") frames of 40"
  grep -q 'delta-unit' "$dir/vp8.src.chains" || fail "vp8: no delta unit arrived"
  same "$dir/vp8.sink.chains" "$dir/vp8.src.chains" "vp8: timestamps, offsets or flags"
  same "$dir/vp8.sink.sums" "$dir/vp8.src.sums" "vp8: checksums"
  copies "$dir/vp8.sink" "frames in place 0, copied 40" "vp8: the sink copies the encoder's buffers"
  echo "frames: raw, copying source and VP8 arrived unchanged"
  ;;
caps)
  two="concat name=c videotestsrc num-buffers=10 pattern=ball ! video/x-raw,format=I420,width=320,height=240,framerate=30/1 ! c. videotestsrc num-buffers=10 pattern=smpte ! video/x-raw,format=RGB,width=160,height=120,framerate=15/1 ! c."
  conv="videoconvert ! video/x-raw,format=RGBA ! checksumsink"
  gst-launch-1.0 -v $two c. ! $conv > "$dir/one" 2>&1 || fail "the one-process pipeline failed"
  two_processes "$two c. ! shmchansink $ref" "shmchansrc $ref ! $conv" caps
  grep -a 'shmchansink0.GstPad:sink: caps' "$dir/caps.sink" | sed 's/.*caps = //' > "$dir/sink.caps"
  grep -a 'shmchansrc0.GstPad:src: caps' "$dir/caps.src" | sed 's/.*caps = //' > "$dir/src.caps"
  [ "$(wc -l < "$dir/sink.caps")" -eq 2 ] || fail "the sink saw $(wc -l < "$dir/sink.caps") caps, not 2"
  same "$dir/sink.caps" "$dir/src.caps" "caps of the sink and of the source"
  sums "$dir/one" > "$dir/one.sums"; sums "$dir/caps.src" > "$dir/caps.sums"
  same "$dir/one.sums" "$dir/caps.sums" "checksums after videoconvert"
  echo "caps: both caps reached the source in order, frames equal"
  ;;
kill-sink | kill-src)
  live="videotestsrc is-live=true pattern=ball ! video/x-raw,format=I420,width=320,height=240,framerate=30/1"
  gst-launch-1.0 $live ! shmchansink $ref > "$dir/sink" 2>&1 & spid=$!; pids+=("$spid")
  gst-launch-1.0 -v shmchansrc $ref ! fakesink silent=false > "$dir/src" 2>&1 & rpid=$!; pids+=("$rpid")
  wait_frames "$dir/src"
  kill -0 "$spid" 2>/dev/null && kill -0 "$rpid" 2>/dev/null || { cat "$dir/sink" "$dir/src"; fail "a side ended early"; }
  if [ "$case_name" = kill-sink ]; then victim=$spid other=$rpid out=$dir/src word="writer's process died"
  else victim=$rpid other=$spid out=$dir/sink word="reader's process died"; fi
  kill -9 "$victim"
  wait_exit "$other" 20 "the survivor"
  [ "$rc" -ne 0 ] || { cat "$out"; fail "the survivor exited 0"; }
  grep -q "ERROR.*$word" "$out" || { cat "$out"; fail "no ERROR saying \"$word\""; }
  echo "$case_name: the other side posted: $(grep -m1 ERROR "$out")"
  ;;
too-large)
  # A given capacity: the ref file appears at start; the first frame comes 3 s later, once
  # the source has opened the channel (it polls the ref file every 50 ms).
  gst-launch-1.0 $raw ! identity sleep-time=3000000 ! shmchansink $ref capacity=65536 > "$dir/sink" 2>&1 & spid=$!; pids+=("$spid")
  gst-launch-1.0 shmchansrc $ref ! fakesink > "$dir/src" 2>&1 & rpid=$!; pids+=("$rpid")
  wait_exit "$spid" 30 sink; sink_rc=$rc
  wait_exit "$rpid" 30 source; src_rc=$rc
  [ "$sink_rc" -ne 0 ] && [ "$src_rc" -ne 0 ] || { cat "$dir/sink" "$dir/src"; fail "exits $sink_rc and $src_rc"; }
  grep -q 'ERROR.*capacity >= 262144' "$dir/sink" || { cat "$dir/sink"; fail "the sink's ERROR names no capacity"; }
  grep -q 'ERROR.*aborted the stream: .*capacity >= 262144' "$dir/src" || { cat "$dir/src"; fail "the source's ERROR lacks the reason"; }
  echo "too-large: $(grep -m1 ERROR "$dir/src")"
  ;;
stopped)
  live="videotestsrc is-live=true ! video/x-raw,format=I420,width=320,height=240,framerate=30/1"
  gst-launch-1.0 $live ! shmchansink $ref > "$dir/sink" 2>&1 & spid=$!; pids+=("$spid")
  gst-launch-1.0 -v shmchansrc $ref ! fakesink silent=false > "$dir/src" 2>&1 & rpid=$!; pids+=("$rpid")
  wait_frames "$dir/src"
  kill -INT "$spid"  # gst-launch-1.0 stops the pipeline without EOS
  wait_exit "$spid" 20 sink
  wait_exit "$rpid" 20 source
  [ "$rc" -ne 0 ] || { cat "$dir/src"; fail "the source exited 0"; }
  grep -q 'ERROR.*pipeline stopped before EOS' "$dir/src" || { cat "$dir/src"; fail "no reason in the source's ERROR"; }
  [ ! -e "$dir/ref" ] || fail "the sink left its ref file"
  echo "stopped: $(grep -m1 ERROR "$dir/src")"
  ;;
socket)
  # Needs frames on the socket path (C++ socket ends); the engine bridges the ring.
  "$cli" engine --listen 127.0.0.1:0 > "$dir/engine" 2>&1 & epid=$!; pids+=("$epid")
  for ((i = 0; i < 100; i++)); do grep -q 'ws://' "$dir/engine" && break; sleep 0.1; done
  url=$(grep -o 'ws://[0-9.:]*' "$dir/engine" | head -1)
  [ -n "$url" ] || { cat "$dir/engine"; fail "the engine printed no address"; }
  export SHMCHAN_TRANSPORT=socket
  gst-launch-1.0 -v $raw ! $src_side > "$dir/one" 2>&1 || fail "the one-process pipeline failed"
  two_processes "$raw ! shmchansink $ref engine=$url" "shmchansrc $ref engine=$url ! $src_side" sock
  chains "$dir/one" > "$dir/one.chains"; chains "$dir/sock.src" > "$dir/sock.chains"
  sums "$dir/one" > "$dir/one.sums"; sums "$dir/sock.src" > "$dir/sock.sums"
  same "$dir/one.chains" "$dir/sock.chains" "socket: timestamps, offsets or flags"
  same "$dir/one.sums" "$dir/sock.sums" "socket: checksums"
  echo "socket: 60 frames through the engine's socket path, unchanged"
  ;;
fanout)
  # One sink, three sources in three processes: each its own ref (ref-index), every frame.
  gst-launch-1.0 -v $raw ! $src_side > "$dir/one" 2>&1 || fail "the one-process pipeline failed"
  chains "$dir/one" > "$dir/one.chains"; sums "$dir/one" > "$dir/one.sums"
  launch sink $raw ! shmchansink $ref readers=3; spid=$bg_pid
  src_pids=()
  for i in 0 1 2; do launch "src$i" shmchansrc $ref ref-index=$i ! $src_side; src_pids+=("$bg_pid"); done
  for i in 0 1 2; do
    wait_exit "${src_pids[$i]}" 60 "source $i"
    [ "$rc" -eq 0 ] || { cat "$dir/src$i"; fail "source $i exited $rc"; }
    chains "$dir/src$i" > "$dir/src$i.chains"; sums "$dir/src$i" > "$dir/src$i.sums"
    same "$dir/one.chains" "$dir/src$i.chains" "source $i: timestamps, offsets or flags"
    same "$dir/one.sums" "$dir/src$i.sums" "source $i: checksums"
  done
  wait_exit "$spid" 30 sink
  [ "$rc" -eq 0 ] || { cat "$dir/sink"; fail "the sink exited $rc"; }
  copies "$dir/sink" "frames in place 60, copied 0" "fanout: upstream must render into the ring once"
  grep -q WARNING "$dir/sink" && { cat "$dir/sink"; fail "the sink warned"; }
  echo "fanout: 3 sources got all 60 frames unchanged, each written once"
  ;;
fanout-kill)
  # Block: source 1 killed mid-stream; the library drops it; source 0 and the sink finish.
  slow="videotestsrc num-buffers=100 pattern=ball ! video/x-raw,format=I420,width=320,height=240,framerate=30/1"
  gst-launch-1.0 -v $slow ! $src_side > "$dir/one" 2>&1 || fail "the one-process pipeline failed"
  sums "$dir/one" > "$dir/one.sums"
  launch sink $slow ! identity sleep-time=20000 ! shmchansink $ref readers=2; spid=$bg_pid
  launch src0 shmchansrc $ref ref-index=0 ! $src_side; r0=$bg_pid
  launch src1 shmchansrc $ref ref-index=1 ! $src_side; r1=$bg_pid
  wait_frames "$dir/src1"
  kill -9 "$r1"
  wait_exit "$r0" 60 "source 0"
  [ "$rc" -eq 0 ] || { cat "$dir/src0"; fail "source 0 exited $rc"; }
  wait_exit "$spid" 30 sink
  [ "$rc" -eq 0 ] || { cat "$dir/sink"; fail "the sink exited $rc with one source of two left"; }
  sums "$dir/src0" > "$dir/src0.sums"
  same "$dir/one.sums" "$dir/src0.sums" "source 0: checksums"
  grep -q 'WARNING.*reader 1 of 2: its process died' "$dir/sink" || { cat "$dir/sink"; fail "no WARNING naming reader 1"; }
  echo "fanout-kill: $(grep -m1 WARNING "$dir/sink")"
  ;;
live)
  # Drop-oldest: 60 frames a second (sync=true), the first 1.5 s after the start (its
  # timestamp), so that both sources attach before it; a 2 MiB ring holds ~17 frames.
  live="videotestsrc num-buffers=120 pattern=ball timestamp-offset=1500000000 ! video/x-raw,format=I420,width=320,height=240,framerate=60/1"
  gst-launch-1.0 -v $live ! $src_side > "$dir/one" 2>&1 || fail "the one-process pipeline failed"
  by_offset "$dir/one" > "$dir/one.frames"
  [ "$(wc -l < "$dir/one.frames")" -eq 120 ] || fail "the one-process run has $(wc -l < "$dir/one.frames") frames"
  launch sink $live ! identity silent=false ! shmchansink $ref readers=2 overflow=drop-oldest capacity=2097152 sync=true
  spid=$bg_pid
  launch fast shmchansrc $ref ref-index=0 ! $src_side; fast=$bg_pid
  launch slow shmchansrc $ref ref-index=1 ! $src_side; slow=$bg_pid
  wait_frames "$dir/slow"
  kill -STOP "$slow"
  # The sink does not wait for the stopped source: it ends (EOS) while that one is stopped.
  wait_exit "$spid" 30 sink
  [ "$rc" -eq 0 ] || { cat "$dir/sink"; fail "the sink exited $rc"; }
  wait_exit "$fast" 30 "fast source"
  [ "$rc" -eq 0 ] || { cat "$dir/fast"; fail "the fast source exited $rc"; }
  kill -CONT "$slow"
  wait_exit "$slow" 30 "slow source"
  [ "$rc" -eq 0 ] || { cat "$dir/slow"; fail "the slow source exited $rc"; }
  by_offset "$dir/fast" > "$dir/fast.frames"; by_offset "$dir/slow" > "$dir/slow.frames"
  # A source attaching while the sink waits to commit frame 0 (the clock; its caps message is
  # in the ring already) starts at frame 1 (docs/gstreamer.md, "Late join"); from there, all.
  skip=$(head -1 "$dir/fast.frames" | cut -d' ' -f1)
  [ "$skip" -le 1 ] || fail "the fast source started at frame $skip"
  tail -n +$((skip + 1)) "$dir/one.frames" > "$dir/want.frames"
  same "$dir/want.frames" "$dir/fast.frames" "fast source: frames"
  # Timestamps, offsets and flags as the sink had them (the first buffer: DISCONT here; the
  # sink's pool buffers are tag-memory, which does not travel).
  untag() { sed 's/flags: [0-9a-f]* /flags: /; s/ tag-memory//'; }
  chains "$dir/sink" | tail -n +$((skip + 2)) | untag > "$dir/sink.chains"
  chains "$dir/fast" | tail -n +2 | untag > "$dir/fast.chains"
  same "$dir/sink.chains" "$dir/fast.chains" "fast source: timestamps, offsets or flags"
  n=$(wc -l < "$dir/slow.frames")
  [ "$n" -gt 0 ] && [ "$n" -lt 120 ] || fail "the slow source got $n frames (expected some lost)"
  [ -z "$(not_in "$dir/slow.frames" "$dir/one.frames")" ] || { not_in "$dir/slow.frames" "$dir/one.frames" | head; fail "the slow source got frames that are not the stream's"; }
  chains "$dir/slow" | tail -n +2 | grep -q 'discont' || { chains "$dir/slow"; fail "no DISCONT buffer after the gap"; }
  echo "live: fast source every frame from frame $skip; stopped source $n valid frames after a DISCONT; the sink never waited"
  ;;
late-join)
  # Drop-oldest: the source starts a second into the stream; its caps come from the stream.
  live="videotestsrc is-live=true num-buffers=200 pattern=ball ! video/x-raw,format=I420,width=320,height=240,framerate=50/1"
  conv="videoconvert ! video/x-raw,format=RGBA ! identity silent=false ! checksumsink"
  gst-launch-1.0 -v ${live/is-live=true/} ! $conv > "$dir/one" 2>&1 || fail "the one-process pipeline failed"
  by_offset "$dir/one" > "$dir/one.frames"
  launch sink $live ! shmchansink $ref overflow=drop-oldest; spid=$bg_pid
  for ((i = 0; i < 100; i++)); do [ -e "$dir/ref" ] && break; sleep 0.1; done
  sleep 1
  gst-launch-1.0 -v shmchansrc $ref num-buffers=20 ! $conv > "$dir/src" 2>&1 || { cat "$dir/src"; fail "the late source failed"; }
  by_offset "$dir/src" > "$dir/src.frames"
  [ "$(wc -l < "$dir/src.frames")" -eq 20 ] || { cat "$dir/src"; fail "the late source made $(wc -l < "$dir/src.frames") frames of 20"; }
  first=$(head -1 "$dir/src.frames" | cut -d' ' -f1)
  [ "$first" -gt 0 ] || fail "the source did not join late (first frame $first)"
  [ -z "$(not_in "$dir/src.frames" "$dir/one.frames")" ] || fail "the late source's frames are not the stream's"
  grep -a 'shmchansink0.GstPad:sink: caps' "$dir/sink" | sed 's/.*caps = //' > "$dir/sink.caps"
  grep -a 'shmchansrc0.GstPad:src: caps' "$dir/src" | sed 's/.*caps = //' > "$dir/src.caps"
  same "$dir/sink.caps" "$dir/src.caps" "caps of the sink and of the late source"
  wait_exit "$spid" 30 sink
  [ "$rc" -eq 0 ] || { cat "$dir/sink"; fail "the sink exited $rc"; }
  echo "late-join: joined at frame $first, 20 frames through videoconvert with the sink's caps"
  ;;
ref-index)
  launch sink videotestsrc is-live=true ! shmchansink $ref readers=2 capacity=4194304; spid=$bg_pid
  # The source fails its start (the state change), not its first create(): from there, once in
  # ~10 runs, gst-launch posted the ERROR and then waited forever in preroll. Five runs, each
  # bounded: a hang is a failure.
  for i in 1 2 3 4 5; do
    timeout -s KILL 20 gst-launch-1.0 shmchansrc $ref ref-index=2 ! fakesink > "$dir/src" 2>&1; rc=$?
    [ "$rc" -ne 137 ] || { cat "$dir/src"; fail "ref-index=2 of 2 refs: gst-launch hung (run $i)"; }
    [ "$rc" -ne 0 ] || fail "ref-index=2 of 2 refs exited 0"
  done
  grep -q 'ERROR.*has 2 reader refs: ref-index=2 needs at least 3' "$dir/src" || { cat "$dir/src"; fail "no clear ERROR for ref-index"; }
  echo "ref-index: $(grep -m1 ERROR "$dir/src")"
  kill -INT "$spid"; wait_exit "$spid" 20 sink
  gst-launch-1.0 videotestsrc num-buffers=1 ! shmchansink engine=ws://127.0.0.1:9 readers=2 > "$dir/eng" 2>&1 && fail "readers=2 with engine exited 0"
  grep -q 'ERROR.*need a channel in shared memory' "$dir/eng" || { cat "$dir/eng"; fail "no clear ERROR for readers=2 with engine"; }
  echo "engine: $(grep -m1 ERROR "$dir/eng")"
  ;;
*) echo "unknown case $case_name"; exit 2 ;;
esac
