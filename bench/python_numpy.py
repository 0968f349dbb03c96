#!/usr/bin/env python3
"""Python reading 1 MiB chunks into numpy and summing them: shmchan (zero-copy views into the
ring) against a Unix stream socket (socket.recv_into a preallocated buffer), in one run,
interleaved rounds, medians. The writer is a second Python process in both cases, writing the
same 1 MiB buffer (shmchan: Writer.write, one copy into the ring; socket: sendall, one copy into
the kernel). Every round checks the sum of everything read against the sum of what was written.

    PYTHONPATH=build/python /usr/bin/python3 bench/python_numpy.py [--mib 2048] [--rounds 5]
"""
import argparse
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time

import numpy

import shmchan

CHUNK = 1 << 20
MASK = 2**64 - 1


def payload(seed=7):
    return numpy.random.default_rng(seed).integers(0, 2**63, CHUNK // 8, dtype=numpy.uint64).tobytes()


def expected_sum(chunks):
    s = numpy.frombuffer(payload(), dtype=numpy.uint64).sum(dtype=numpy.uint64)
    return int(s) * chunks % 2**64


def writer_main(kind, where, chunks):
    buf = payload()
    if kind == "shmchan":
        w = shmchan.open_writer(where)
        for _ in range(chunks):
            w.write(buf)
        w.close()
        w.wait_drained()
    else:
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.connect(where)
        for _ in range(chunks):
            s.sendall(buf)
        s.close()


def spawn(kind, where, chunks):
    return subprocess.Popen([sys.executable, __file__, "--writer", kind, where, str(chunks)])


def run_shmchan(chunks):
    ch = shmchan.create_channel(capacity=8 << 20)
    p = spawn("shmchan", json.dumps(ch.writer_ref), chunks)
    total, n, t0 = 0, 0, None
    for view in ch.reader:
        if t0 is None:
            t0 = time.perf_counter()  # from the first chunk: process start-up is not counted
        else:
            n += view.nbytes
        total = (total + int(numpy.frombuffer(view, dtype=numpy.uint64).sum(dtype=numpy.uint64))) & MASK
    dt = time.perf_counter() - t0
    assert p.wait() == 0
    ch.reader.close()
    return n, dt, total


def run_socket(chunks, tmp):
    path = os.path.join(tmp, "sock")
    srv = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    srv.bind(path)
    srv.listen(1)
    p = spawn("socket", path, chunks)
    conn, _ = srv.accept()
    buf = bytearray(CHUNK)
    view = memoryview(buf)
    arr = numpy.frombuffer(buf, dtype=numpy.uint64)
    total, n, t0 = 0, 0, None
    while True:
        got = 0
        while got < CHUNK:  # one whole chunk into the preallocated buffer
            k = conn.recv_into(view[got:])
            if k == 0:
                break
            got += k
        if got == 0:
            break
        assert got == CHUNK
        if t0 is None:
            t0 = time.perf_counter()
        else:
            n += got
        total = (total + int(arr.sum(dtype=numpy.uint64))) & MASK
    dt = time.perf_counter() - t0
    conn.close()
    srv.close()
    os.unlink(path)
    assert p.wait() == 0
    return n, dt, total


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--mib", type=int, default=2048, help="MiB per round and transport")
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--writer", nargs=3, help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.writer:
        writer_main(a.writer[0], a.writer[1], int(a.writer[2]))
        return 0
    want = expected_sum(a.mib)
    rates = {"shmchan": [], "unix socket": []}
    with tempfile.TemporaryDirectory() as tmp:
        for r in range(a.rounds):
            for name in rates:  # interleaved, so that both see the same machine
                n, dt, total = run_shmchan(a.mib) if name == "shmchan" else run_socket(a.mib, tmp)
                if total != want:
                    print(f"{name}: checksum mismatch ({total} != {want})", file=sys.stderr)
                    return 1
                rates[name].append(n / dt / 2**30)
                print(f"round {r + 1} {name:12s} {n / dt / 2**30:7.2f} GiB/s", file=sys.stderr)
    print(f"{'transport':14s} {'median GiB/s':>12s} {'min':>7s} {'max':>7s}  ({a.rounds} rounds of {a.mib} MiB, "
          f"1 MiB chunks summed in numpy)")
    for name, v in rates.items():
        print(f"{name:14s} {statistics.median(v):12.2f} {min(v):7.2f} {max(v):7.2f}")
    ratio = statistics.median(rates["shmchan"]) / statistics.median(rates["unix socket"])
    print(f"shmchan / unix socket: {ratio:.1f}x (checksums verified)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
