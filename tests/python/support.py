"""Shared by the Python tests: the CLI's path, the ring's address range in this process,
self-checking records."""
import os
import subprocess

CLI = os.environ.get("SHMCHAN_CLI", "shmchan")


def segment_ranges(channel_id):
    """The address ranges this process maps of the channel's segment (/proc/self/maps)."""
    ranges = []
    with open("/proc/self/maps") as f:
        for line in f:
            if f"/shmchan-{channel_id}" in line:
                lo, hi = line.split()[0].split("-")
                ranges.append((int(lo, 16), int(hi, 16)))
    return ranges


def in_segment(channel_id, address, size):
    return any(lo <= address and address + size <= hi for lo, hi in segment_ranges(channel_id))


def start_send(path, capacity="1M", chunk=None):
    """`shmchan send FILE`: returns the process and the reader ref it printed."""
    args = [CLI, "send", "--capacity", capacity]
    if chunk:
        args += ["--chunk", chunk]
    p = subprocess.Popen(args + [path], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    ref = p.stdout.readline().strip()
    p.stdout.close()  # it prints nothing else there
    return p, ref


def make_record(seq, size):
    """A record that says which it is: its number, then a byte derived from it."""
    return seq.to_bytes(8, "little") + bytes([seq % 251]) * (size - 8)


def record_ok(data):
    """Whether `data` is whole as make_record made it (not torn, not another record's)."""
    seq = int.from_bytes(data[:8], "little")
    return bytes(data[8:]) == bytes([seq % 251]) * (len(data) - 8)
