# Two hosts on this machine, for tests and benchmarks that cross a network (sourced):
# two network namespaces joined by a veth pair with a private /30 of their own, each with its
# own mount namespace holding its own tmpfs on /dev/shm, so that host B cannot see host A's
# segments. After sourcing: $a_ip, $b_ip, `on a|b CMD...` runs CMD on a host, `kill_hosts` ends
# every process on both, `$dir` is a scratch folder; everything is removed at exit. Exits 77
# (skip) where namespaces cannot be made.
tag=shmchan$$
if ! ip netns add "${tag}a" 2>/dev/null; then
  echo "skipped: cannot create network namespaces here (needs root and iproute2)"
  exit 77
fi
ip netns add "${tag}b"
dir=$(mktemp -d)
hosts=()
# Kills every process inside the two hosts' network namespaces, as the kernel lists them: a
# process started with `on ... &` is a child of a subshell, and killing that subshell's $!
# would leave it running (an engine and workers outlived a run that way).
kill_hosts() {
  local h
  for h in a b; do ip netns pids "${tag}$h" 2>/dev/null | xargs -r kill -KILL 2>/dev/null; done
}
cleanup() {
  kill_hosts
  for p in "${hosts[@]}"; do pkill -KILL -P "$p" 2>/dev/null; kill -KILL "$p" 2>/dev/null; done
  # Every process this script started (engines, workers) even when it exits early on a failure.
  kill -KILL $(jobs -p) 2>/dev/null
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
  disown  # no "Killed" line at cleanup
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

