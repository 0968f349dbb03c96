"""Python against the shmchan CLI across processes, every byte checked, and zero copy: numpy
arrays made from read views, and loans, lie inside the channel's shared mapping."""
import hashlib
import json
import os
import subprocess
import tempfile
import unittest

import numpy

import shmchan
from support import CLI, in_segment, start_send


class Streams(unittest.TestCase):
    def setUp(self):
        self.tmp = tempfile.TemporaryDirectory()
        self.data = os.urandom(5 * 1024 * 1024 + 4321)  # many wraps of a 1 MiB ring, odd tail
        self.path = os.path.join(self.tmp.name, "in")
        with open(self.path, "wb") as f:
            f.write(self.data)

    def tearDown(self):
        self.tmp.cleanup()

    def test_reads_what_shmchan_send_writes_into_numpy_without_a_copy(self):
        p, ref = start_send(self.path)
        r = shmchan.open_reader(json.loads(ref))  # a dict; a JSON string works too
        channel_id = json.loads(ref)["channel_id"]
        digest, total, checked = hashlib.sha256(), 0, 0
        for view in r:
            self.assertIsInstance(view, memoryview)
            self.assertTrue(view.readonly)
            a = numpy.frombuffer(view, dtype=numpy.uint8)
            # Zero copy: the array's data is the record's bytes inside the segment's mapping.
            self.assertTrue(in_segment(channel_id, a.ctypes.data, a.nbytes),
                            f"array at {a.ctypes.data:#x} is not in the ring of {channel_id}")
            self.assertFalse(a.flags.writeable)
            digest.update(a)
            total += a.nbytes
            checked += 1
            del a
        self.assertEqual(p.wait(30), 0)
        self.assertEqual(total, len(self.data))
        self.assertEqual(digest.digest(), hashlib.sha256(self.data).digest())
        self.assertGreater(checked, 5)
        r.close()

    def test_a_view_is_released_at_the_next_item(self):
        ch = shmchan.create_channel(64 << 10)
        ch.writer.write(b"first")
        ch.writer.write(b"second")
        ch.writer.close()
        it = iter(ch.reader)
        first = next(it)
        self.assertEqual(bytes(first), b"first")
        self.assertEqual(bytes(next(it)), b"second")
        with self.assertRaises(ValueError):  # released: never reads reused ring bytes
            bytes(first)

    def test_read_all_of_shmchan_send(self):
        p, ref = start_send(self.path, chunk="100K")
        r = shmchan.open_reader(ref)
        self.assertEqual(r.read_all(), self.data)
        self.assertEqual(p.wait(30), 0)

    def _recv(self, ch):
        out = os.path.join(self.tmp.name, "out")
        p = subprocess.Popen([CLI, "recv", "-o", out, json.dumps(ch.reader_ref)], stderr=subprocess.PIPE, text=True)
        return p, out

    def test_writes_what_shmchan_recv_reads(self):
        ch = shmchan.create_channel(capacity=1 << 20)
        channel_id = ch.writer_ref["channel_id"]
        p, out = self._recv(ch)
        w = ch.writer
        mv, pos, step = memoryview(self.data), 0, 0
        while pos < len(self.data):
            n = min(len(self.data) - pos, 200_000 + step * 7)
            if step % 3 == 0:  # bytes-like objects straight from the buffer protocol
                w.write(mv[pos:pos + n])
            elif step % 3 == 1:  # a numpy array
                w.write(numpy.frombuffer(self.data, dtype=numpy.uint8, count=n, offset=pos))
            else:  # a loan filled in place
                n = min(n, w.max_record)
                with w.loan(n) as loan:
                    self.assertTrue(in_segment(channel_id, loan.address, n))
                    numpy.frombuffer(loan.view, dtype=numpy.uint8)[:] = numpy.frombuffer(mv[pos:pos + n], dtype=numpy.uint8)
            pos += n
            step += 1
        w.send_message("done")
        w.close()
        w.wait_drained(timeout=30)
        _, err = p.communicate(timeout=30)
        self.assertEqual(p.returncode, 0, err)
        self.assertIn("message: done", err)
        with open(out, "rb") as f:
            self.assertEqual(f.read(), self.data)

    def test_loan_commit_part_and_abandon_on_exception(self):
        ch = shmchan.create_channel(64 << 10)
        w, r = ch.writer, ch.reader
        loan = w.loan(100)
        loan.view[:3] = b"abc"
        loan.commit(3)
        with self.assertRaises(RuntimeError):
            with w.loan(10) as l2:
                l2.view[:2] = b"zz"
                raise RuntimeError("fails while filling")
        with w.loan(2) as l3:
            l3.view[:] = b"ok"
        w.close()
        self.assertEqual([bytes(v) for v in r], [b"abc", b"ok"])

    def test_frames_with_meta(self):
        ch = shmchan.create_channel(1 << 20)
        w, r = ch.writer, ch.reader
        frame = numpy.arange(640 * 4, dtype=numpy.uint16)
        w.write_frame(frame, pts=40_000_000, duration=20_000_000, flags=shmchan.FrameFlags.KEYFRAME, user=b"caps")
        with w.frame_loan(frame.nbytes) as loan:
            numpy.frombuffer(loan.view, dtype=numpy.uint16)[:] = frame
            loan.commit(pts=60_000_000, offset=3)
        w.send_message("hello")
        w.close()
        a = r.next(timeout=5)
        self.assertEqual(a.kind, "frame")
        self.assertEqual((a.pts, a.dts, a.duration, a.flags, a.user), (40_000_000, None, 20_000_000, 1, b"caps"))
        self.assertTrue(numpy.array_equal(numpy.frombuffer(a.data, dtype=numpy.uint16), frame))
        b = r.next(timeout=5)
        self.assertEqual((b.kind, b.pts, b.offset, b.meta.offset_end), ("frame", 60_000_000, 3, None))
        m = r.next(timeout=5)
        self.assertEqual((m.kind, m.text), ("message", "hello"))
        self.assertEqual(r.next(timeout=5).kind, "end")
        self.assertEqual(r.next(timeout=5).kind, "end")  # sticky

    def test_messages_go_to_on_message(self):
        ch = shmchan.create_channel(64 << 10)
        ch.writer.write(b"a")
        ch.writer.send_message("between")
        ch.writer.write(b"b")
        ch.writer.close()
        got = []
        ch.reader.on_message = got.append
        self.assertEqual(ch.reader.read_all(), b"ab")
        self.assertEqual(got, ["between"])

    def test_held_items_released_in_any_order(self):
        ch = shmchan.create_channel(64 << 10, max_held=2)
        for x in (b"1", b"2", b"3"):
            ch.writer.write(x)
        ch.writer.close()
        a, b = ch.reader.next(timeout=5), ch.reader.next(timeout=5)
        self.assertEqual((bytes(a.data), bytes(b.data)), (b"1", b"2"))
        with self.assertRaises(shmchan.HeldLimit):
            ch.reader.next(timeout=5)
        a.release()
        self.assertEqual(bytes(ch.reader.next(timeout=5).data), b"3")
        b.release()

    def test_refs(self):
        ch = shmchan.create_channel(64 << 10)
        self.assertTrue(shmchan.is_channel_ref(ch.reader_ref))
        self.assertEqual(ch.reader_ref["direction"], "read")
        self.assertEqual(json.loads(json.dumps(ch.writer_ref)), ch.writer_ref)
        payload = {"video": ch.reader_ref, "more": [1, {"w": ch.writer_ref}], "x": {"channel_id": 1}}
        self.assertEqual([p for p, _ in shmchan.extract_channel_refs(payload)], ["video", "more[1].w"])
        self.assertEqual(shmchan.extract_channel_refs([ch.reader_ref])[0][0], "[0]")
        self.assertEqual(shmchan.extract_channel_refs(ch.reader_ref)[0][0], "")
        self.assertFalse(shmchan.is_channel_ref({"channel_id": "a", "access_key": "k", "direction": "up"}))

    def test_prefault_maps_the_ring_when_an_end_is_first_used_unless_told_not_to(self):
        def rss_shmem_kib():
            with open("/proc/self/status") as f:
                return next(int(l.split()[1]) for l in f if l.startswith("RssShmem:"))

        grew = {}
        for prefault in (False, True):
            before = rss_shmem_kib()
            ch = shmchan.create_channel(64 << 20, prefault=prefault)
            ch.writer.write(b"x" * 4096)
            self.assertEqual(bytes(ch.reader.next(timeout=5).data), b"x" * 4096)
            grew[prefault] = rss_shmem_kib() - before
            ch.writer.close()
            ch.reader.close()
            del ch
        # Prefaulted, the writer maps all 64 MiB at once; not, only the pages it touched.
        self.assertGreaterEqual(grew[True], 60 << 10, grew)
        self.assertLess(grew[False], 16 << 10, grew)

    def test_rmw_wakes_reaches_the_ends_and_they_promise_in_the_segment(self):
        # Each end that promised counts itself in its peer's wait line (shm/layout.hpp pins the
        # offsets: the data line's rmw_wakers at 352, the space line's at 416) before its first
        # commit or release.
        def promised(ch):
            with open("/dev/shm/shmchan-" + ch.reader_ref["channel_id"], "rb") as f:
                words = f.read(420)
            return int.from_bytes(words[352:356], "little"), int.from_bytes(words[416:420], "little")

        for rmw in (False, True):
            ch = shmchan.create_channel(64 << 10, rmw_wakes=rmw)
            ch.writer.write(b"abc")
            with ch.reader.next(timeout=5) as item:
                self.assertEqual(bytes(item.data), b"abc")
            self.assertEqual(promised(ch), (1, 1) if rmw else (0, 0))
            ch.writer.close()
            ch.reader.close()


if __name__ == "__main__":
    unittest.main()


class Lifetimes(unittest.TestCase):
    def test_an_array_keeps_the_mapping_after_the_reader_is_gone(self):
        ch = shmchan.create_channel(64 << 10)
        ch.writer.write(b"abcdefgh")
        ch.writer.close()
        a = numpy.frombuffer(next(iter(ch.reader)), dtype=numpy.uint8)
        ch.reader.close()  # deferred: the array still shows the ring
        del ch
        self.assertEqual(a.tobytes(), b"abcdefgh")

    def test_a_dropped_reader_frees_its_end(self):
        ch = shmchan.create_channel(64 << 10)
        ch.writer.write(b"a")
        it = iter(ch.reader)
        next(it)  # holds a view, then everything is dropped mid-stream
        del it
        ch.reader = None
        with self.assertRaises(shmchan.PeerClosed):
            ch.writer.close(timeout=5)
