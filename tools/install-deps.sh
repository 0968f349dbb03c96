#!/usr/bin/env bash
# Installs the Debian packages shmchan builds and tests with (skipped when all are present).
set -euo pipefail
pkgs=(g++ cmake make pkg-config libboost-dev nlohmann-json3-dev catch2 libbenchmark-dev)
# OpenSSL: libcrypto (segments store SHA-256 digests of the access keys), libssl (wss://), and
# the openssl command, which makes the TLS tests' certificates.
pkgs+=(libssl-dev openssl ca-certificates)
# The benchmark suite (shmchan bench): ZeroMQ and iceoryx to compare with, gnuplot for plots.
pkgs+=(libzmq3-dev gnuplot-nox iceoryx libiceoryx-posh-dev)
# The GStreamer plugin (plugins/gstreamer) and its tests: headers, gst-launch-1.0, and the
# elements the tests use (videotestsrc, videoconvert; vp8enc; checksumsink, shmsink/shmsrc).
pkgs+=(libgstreamer1.0-dev libgstreamer-plugins-base1.0-dev gstreamer1.0-tools
       gstreamer1.0-plugins-base gstreamer1.0-plugins-good gstreamer1.0-plugins-bad)
# The two-host test and benchmark (tests/remote, bench/remote): network namespaces and veth.
pkgs+=(iproute2)
# The C ABI and the Python module: Debian's CPython headers and numpy (zero-copy reads into
# arrays), abidiff for the ABI check (tools/abi-check.sh).
pkgs+=(python3-dev python3-numpy abigail-tools)
# Node runs the interop tests with the stock iii SDK; the machine image may bring its own.
command -v node >/dev/null && command -v npm >/dev/null || pkgs+=(nodejs npm)
missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  echo "installing: ${missing[*]}" >&2
  sudo_cmd=()
  [ "$(id -u)" -eq 0 ] || sudo_cmd=(sudo)
  "${sudo_cmd[@]}" apt-get update -qq
  DEBIAN_FRONTEND=noninteractive "${sudo_cmd[@]}" apt-get install -y -qq "${missing[@]}"
fi
