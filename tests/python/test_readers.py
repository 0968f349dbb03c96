"""Several readers of one channel from Python (docs/readers.md), across real processes: fan-out
with every byte checked, drop_oldest's gap items, the writer's view of a killed reader, and the
options' checks."""
import asyncio
import hashlib
import json
import os
import signal
import subprocess
import sys
import unittest

import shmchan
from support import make_record

CHILD = os.path.join(os.path.dirname(os.path.abspath(__file__)), "fanout_child.py")


def spawn(mode, ref):
    """A reader process on `ref`; its stdin is a pipe (the lag mode waits on it)."""
    return subprocess.Popen([sys.executable, CHILD, mode, json.dumps(ref)], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def expect_ready(p):
    line = p.stdout.readline()
    if line != "ready\n":
        raise AssertionError(f"reader process said {line!r}: {p.stderr.read() if p.poll() is not None else ''}")


def result(p):
    out, err = p.communicate(timeout=60)
    if p.returncode != 0:
        raise AssertionError(f"reader process exited {p.returncode}: {err}")
    return json.loads(out)


class Readers(unittest.TestCase):
    def setUp(self):
        self.procs = []

    def tearDown(self):
        for p in self.procs:
            if p.poll() is None:
                p.kill()
            p.wait()
            for f in (p.stdin, p.stdout, p.stderr):
                f.close()

    def start(self, mode, ref):
        p = spawn(mode, ref)
        self.procs.append(p)
        return p

    def test_one_writer_three_reader_processes_every_byte(self):
        data = os.urandom(3 * 1024 * 1024 + 77)  # many wraps of a 64 KiB ring, odd tail
        ch = shmchan.create_channel(64 << 10, readers=3)
        self.assertEqual(len(ch.reader_refs), 3)
        self.assertEqual(len({r["access_key"] for r in ch.reader_refs}), 3)  # a key each
        self.assertEqual(ch.reader_ref, ch.reader_refs[0])
        self.assertEqual([s.state for s in ch.writer.readers()], ["waiting"] * 3)
        procs = [self.start("sum", ref) for ref in ch.reader_refs]
        mv, pos, n = memoryview(data), 0, 1
        while pos < len(data):  # sizes from 1 byte to several records
            ch.writer.write(mv[pos:pos + n], timeout=30)
            pos += n
            n = n * 3 + 1 if n < 200_000 else 1
        ch.writer.close(timeout=30)
        ch.writer.wait_drained(timeout=30)
        want = {"sha256": hashlib.sha256(data).hexdigest(), "bytes": len(data)}
        for p in procs:
            self.assertEqual(result(p), want)
        status = ch.writer.readers()
        self.assertEqual([s.state for s in status], ["done"] * 3)
        self.assertEqual(len({s.released for s in status}), 1)  # all at the same place: the end
        self.assertGreater(status[0].released, len(data))        # payload and record headers
        self.assertEqual({s.pid for s in status}, {p.pid for p in procs})

    def test_drop_oldest_a_lagging_reader_gets_a_gap_then_valid_records(self):
        size, count = 1000, 400  # 400 KB through a 64 KiB ring
        ch = shmchan.create_channel(64 << 10, readers=2, overflow="drop_oldest")
        lag = self.start("lag", ch.reader_refs[0])  # reader 1's ref is never used
        expect_ready(lag)  # claimed: it counts from here
        for seq in range(count):
            ch.writer.write(make_record(seq, size), timeout=0)  # never waits (WouldBlock otherwise)
        ch.writer.close(timeout=0)
        lag.stdin.write("go\n")
        lag.stdin.flush()
        got = result(lag)
        self.assertEqual(len(got["gaps"]), 1, got["gaps"])
        records, nbytes = got["gaps"][0]
        seqs = got["seqs"]
        self.assertGreater(records, 0)
        self.assertEqual(nbytes, records * size)
        # It missed exactly the oldest `records`, then reads every later record whole.
        self.assertEqual(seqs, list(range(records, count)))
        self.assertLess(len(seqs), 64)  # no more than the ring holds
        self.assertEqual(got["bad"], [])
        self.assertEqual([s.state for s in ch.writer.readers()], ["done", "waiting"])

    def test_the_writer_sees_a_killed_reader_as_lost_and_one_that_closed_as_left(self):
        data = os.urandom(1024 * 1024)
        ch = shmchan.create_channel(64 << 10, readers=4)
        full = [self.start("sum", ch.reader_refs[i]) for i in (0, 3)]
        killed = self.start("hold", ch.reader_refs[1])
        leaving = self.start("leave", ch.reader_refs[2])
        ch.writer.write(data[:1000], timeout=30)
        expect_ready(killed)
        expect_ready(leaving)
        self.assertEqual(leaving.wait(30), 0)
        killed.send_signal(signal.SIGKILL)
        killed.wait(30)
        # Under block the dead and departed readers stop holding the ring; the others get it all.
        ch.writer.write(data[1000:], timeout=30)
        ch.writer.close(timeout=30)
        with self.assertRaises(shmchan.PeerLost):  # a reader died: not everyone got everything
            ch.writer.wait_drained(timeout=30)
        want = {"sha256": hashlib.sha256(data).hexdigest(), "bytes": len(data)}
        for p in full:
            self.assertEqual(result(p), want)
        self.assertEqual([s.state for s in ch.writer.readers()], ["done", "lost", "left", "done"])

    def test_gaps_are_never_skipped_silently(self):
        def lapped():
            ch = shmchan.create_channel(4096, overflow="drop_oldest")
            ch.reader.try_next()  # the local reader claims its end: it counts from here
            for seq in range(20):
                ch.writer.write(make_record(seq, 600), timeout=0)
            ch.writer.close()
            return ch.reader

        async def drain(r):
            async for _ in r:
                pass

        for name, read in (("read_all", lambda r: r.read_all()), ("for", lambda r: list(r)),
                           ("async for", lambda r: asyncio.run(drain(r)))):
            with self.subTest(name), self.assertRaises(shmchan.DataLost) as cm:
                read(lapped())
            self.assertEqual(cm.exception.name, "data_lost")
            self.assertIn("overwritten", cm.exception.message)
        self.assertEqual([it.kind for it in lapped().items()][0], "gap")  # items() hands it over

    def test_a_held_view_overwritten_is_not_intact(self):
        ch = shmchan.create_channel(4096, overflow="drop_oldest")
        r = ch.reader
        r.try_next()
        ch.writer.write(make_record(0, 600))
        held = r.next(timeout=5)
        self.assertTrue(held.intact)
        for seq in range(1, 20):
            ch.writer.write(make_record(seq, 600), timeout=0)
        self.assertFalse(held.intact)  # the writer went a ring past it
        gap = r.next(timeout=5)
        self.assertEqual(gap.kind, "gap")
        self.assertEqual(gap.gap.bytes, gap.gap.records * 600)
        after = r.next(timeout=5)
        self.assertEqual(after.kind, "chunk")
        self.assertTrue(after.intact)
        self.assertEqual(int.from_bytes(after.data[:8], "little"), 1 + gap.gap.records)
        self.assertFalse(gap.intact)  # released by the next call (max_held 1)

    def test_block_views_stay_intact(self):
        ch = shmchan.create_channel(64 << 10, readers=2)
        ch.writer.write(b"abc")
        it = ch.reader.next(timeout=5)
        self.assertTrue(it.intact)
        self.assertEqual(ch.writer.readers()[0].state, "reading")
        it.release()

    def test_invalid_reader_counts_and_policies(self):
        for bad in (0, -1, 65):
            with self.assertRaisesRegex(ValueError, "readers must be between 1 and 64"):
                shmchan.create_channel(readers=bad)
        for bad in (True, 2.0, "3"):
            with self.assertRaises(TypeError):
                shmchan.create_channel(readers=bad)
        for bad in ("drop-newest", "Block", None):
            with self.assertRaisesRegex(ValueError, "overflow must be one of"):
                shmchan.create_channel(overflow=bad)
        self.assertEqual(len(shmchan.create_channel(4096, readers=64).reader_refs), 64)


if __name__ == "__main__":
    unittest.main()
