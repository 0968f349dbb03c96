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
SPIN_US = None  # the library's default (--spin-us)


def payload(seed=7):
    return numpy.random.default_rng(seed).integers(0, 2**63, CHUNK // 8, dtype=numpy.uint64).tobytes()


def expected_sum(chunks):
    s = numpy.frombuffer(payload(), dtype=numpy.uint64).sum(dtype=numpy.uint64)
    return int(s) * chunks % 2**64


def writer_main(kind, where, chunks):
    buf = payload()
    c0 = time.process_time()
    if kind == "shmchan":
        w = shmchan.open_writer(where, spin_us=SPIN_US)
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
    print(time.process_time() - c0, flush=True)  # CPU seconds of the writing, for the parent


def spawn(kind, where, chunks):
    spin = [] if SPIN_US is None else ["--spin-us", str(SPIN_US)]
    return subprocess.Popen([sys.executable, __file__, "--writer", kind, where, str(chunks)] + spin,
                            stdout=subprocess.PIPE, text=True)


def writer_cpu(p):
    out, _ = p.communicate()
    assert p.returncode == 0
    return float(out)


def run_shmchan(chunks, summing):
    ch = shmchan.create_channel(capacity=8 << 20, spin_us=SPIN_US)
    p = spawn("shmchan", json.dumps(ch.writer_ref), chunks)
    total, n, t0 = 0, 0, None
    for view in ch.reader:
        if t0 is None:
            t0 = time.perf_counter()  # from the first chunk: process start-up is not counted
            c0 = time.process_time()
        else:
            n += view.nbytes
        a = numpy.frombuffer(view, dtype=numpy.uint64)
        if summing or t0 is None or n == 0:
            total = (total + int(a.sum(dtype=numpy.uint64))) & MASK
    dt, cpu = time.perf_counter() - t0, time.process_time() - c0
    ch.reader.close()
    return n, dt, total, (cpu, writer_cpu(p))


def run_socket(chunks, tmp, summing):
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
            c0 = time.process_time()
        else:
            n += got
        if summing or n == 0:
            total = (total + int(arr.sum(dtype=numpy.uint64))) & MASK
    dt, cpu = time.perf_counter() - t0, time.process_time() - c0
    conn.close()
    srv.close()
    os.unlink(path)
    return n, dt, total, (cpu, writer_cpu(p))


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--mib", type=int, default=2048, help="MiB per round and transport")
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--writer", nargs=3, help=argparse.SUPPRESS)
    ap.add_argument("--spin-us", type=int, help="shmchan ends busy-wait this long before sleeping")
    a = ap.parse_args()
    global SPIN_US
    SPIN_US = a.spin_us
    if a.writer:
        writer_main(a.writer[0], a.writer[1], int(a.writer[2]))
        return 0
    names = ("shmchan", "unix socket")
    rates = {(mode, name): [] for mode in ("sum", "no sum") for name in names}
    cpus = {k: [] for k in rates}
    with tempfile.TemporaryDirectory() as tmp:
        for r in range(a.rounds):
            for mode, name in rates:  # interleaved, so that every variant sees the same machine
                summing = mode == "sum"
                if name == "shmchan":
                    n, dt, total, cpu = run_shmchan(a.mib, summing)
                else:
                    n, dt, total, cpu = run_socket(a.mib, tmp, summing)
                want = expected_sum(a.mib if summing else 1)
                if total != want:
                    print(f"{name}: checksum mismatch ({total} != {want})", file=sys.stderr)
                    return 1
                rates[(mode, name)].append(n / dt / 2**30)
                gib = a.mib / 1024
                cpus[(mode, name)].append((cpu[0] / gib, cpu[1] / gib))
                print(f"round {r + 1} {mode:6s} {name:12s} {n / dt / 2**30:7.2f} GiB/s, CPU s/GiB: reader "
                      f"{cpu[0] / gib:6.3f} writer {cpu[1] / gib:6.3f}", file=sys.stderr)
    print(f"{a.rounds} rounds of {a.mib} MiB in 1 MiB chunks, each into a numpy array; GiB/s, median (min-max)")
    print(f"{'work per chunk':16s} {'shmchan':>20s} {'unix socket':>20s} {'ratio':>6s}")
    for mode in ("sum", "no sum"):
        cells = []
        for name in names:
            v = rates[(mode, name)]
            cells.append(f"{statistics.median(v):6.2f} ({min(v):.2f}-{max(v):.2f})")
        ratio = statistics.median(rates[(mode, names[0])]) / statistics.median(rates[(mode, names[1])])
        label = "numpy sum" if mode == "sum" else "frombuffer only"
        print(f"{label:16s} {cells[0]:>20s} {cells[1]:>20s} {ratio:5.1f}x")
    for who, i in (("reader", 0), ("writer", 1)):
        print(f"CPU seconds per GiB, {who} process (median; lower is better)")
        for mode in ("sum", "no sum"):
            c = [statistics.median(x[i] for x in cpus[(mode, name)]) for name in names]
            label = "numpy sum" if mode == "sum" else "frombuffer only"
            print(f"{label:16s} {c[0]:20.3f} {c[1]:20.3f} {c[1] / c[0]:5.1f}x")
    print(f"checksums verified; load average at the end: {os.getloadavg()[0]:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
