"""Every error path raises its class under shmchan.Error, with the code and the message."""
import json
import os
import subprocess
import unittest

import shmchan
from support import CLI


def channel(capacity=64 << 10, **kw):
    return shmchan.create_channel(capacity, **kw)


class Errors(unittest.TestCase):
    def assertError(self, cls, fn, *args, **kw):
        with self.assertRaises(cls) as cm:
            fn(*args, **kw)
        e = cm.exception
        self.assertIsInstance(e, shmchan.Error)
        self.assertLess(e.code, 0)
        self.assertTrue(e.name and e.message, e)
        return e

    def test_bad_refs(self):
        self.assertError(shmchan.InvalidRef, shmchan.open_reader, "{not json")
        self.assertError(shmchan.InvalidRef, shmchan.open_reader, {"channel_id": "x"})
        with self.assertRaises(TypeError):
            shmchan.open_reader(42)
        ch = channel()
        ch.writer.write(b"")  # the local writer claims its end on first use
        self.assertError(shmchan.WrongDirection, shmchan.open_writer, ch.reader_ref)
        forged = dict(ch.writer_ref)
        key = forged["access_key"]  # hex: change the value of a digit, not its case
        forged["access_key"] = ("0" if key[0] != "0" else "1") + key[1:]
        self.assertError(shmchan.BadKey, shmchan.open_writer, forged)
        self.assertError(shmchan.AlreadyClaimed, shmchan.open_writer, json.dumps(ch.writer_ref))
        ch.writer.close()
        gone = dict(ch.reader_ref)
        gone["channel_id"] = "00000000-0000-4000-8000-000000000000"
        gone["shm"] = dict(gone["shm"], segment="/shmchan-" + gone["channel_id"])
        self.assertError(shmchan.SegmentMissing, shmchan.open_reader, gone)

    def test_bad_options(self):
        self.assertError(shmchan.InvalidArgument, shmchan.create_channel, 1 << 62)  # too large a ring
        with self.assertRaises(ValueError):
            shmchan.create_channel(max_held=0)
        with self.assertRaises(ValueError):
            shmchan.open_reader({}, transport="carrier pigeon")
        self.assertError(shmchan.EngineUnreachable, shmchan.open_reader,
                         {"channel_id": "c", "access_key": "k", "direction": "read"},
                         transport="socket", engine="ws://127.0.0.1:1")

    def test_timeouts_and_would_block(self):
        ch = channel()
        e = self.assertError(shmchan.Timeout, ch.reader.next, timeout=0.05)
        self.assertIsInstance(e, TimeoutError)
        self.assertIsNone(ch.reader.try_next())
        ch.writer.write(b"x" * (2 * ch.writer.max_record))  # two records fill the ring
        self.assertError(shmchan.Timeout, ch.writer.write, b"y" * (ch.writer.max_record), timeout=0.05)
        self.assertError(shmchan.Timeout, ch.writer.loan, ch.writer.max_record, timeout=0.05)

    def test_too_large(self):
        ch = channel()
        self.assertError(shmchan.TooLarge, ch.writer.loan, 1 << 20)
        e = self.assertError(shmchan.TooLarge, ch.writer.write_frame, b"x" * (1 << 20))
        self.assertIn("capacity", e.message)  # what capacity the frame needs
        self.assertError(shmchan.TooLarge, ch.writer.send_message, "m" * (1 << 20))
        self.assertError(shmchan.InvalidArgument, ch.writer.write_frame, b"x", user=b"u" * 300)

    def test_frame_loan_user_too_long(self):
        ch = channel()
        loan = ch.writer.frame_loan(5)
        loan.view[:] = b"hello"
        e = self.assertError(shmchan.InvalidArgument, loan.commit, pts=3, user=b"u" * 257)
        self.assertIn("at most 256", e.message)
        self.assertTrue(loan.is_open)  # nothing published, nothing lost
        self.assertIsNone(ch.reader.try_next())
        loan.commit(pts=3, user=b"u" * 256)
        self.assertFalse(loan.is_open)
        it = ch.reader.next(timeout=5)
        self.assertEqual(bytes(it.data), b"hello")
        self.assertEqual(it.meta.pts, 3)
        self.assertEqual(bytes(it.meta.user), b"u" * 256)

    def test_aborted_with_reason(self):
        ch = channel()
        ch.writer.write(b"before")
        ch.writer.abort("camera unplugged")
        self.assertEqual(bytes(ch.reader.next(timeout=5).data), b"before")
        e = self.assertError(shmchan.Aborted, ch.reader.next, timeout=5)
        self.assertEqual(e.reason, "camera unplugged")
        self.assertEqual(ch.reader.abort_reason, "camera unplugged")
        self.assertError(shmchan.Aborted, ch.reader.read_all)  # sticky
        self.assertError(shmchan.Closed, ch.writer.write, b"after")

    def test_writer_dropped_without_close_aborts(self):
        ch = channel()
        ch.writer.write(b"x")
        ch.writer.free()
        e = self.assertError(shmchan.Aborted, ch.reader.read_all, timeout=5)
        self.assertIn("without close", e.reason)

    def test_writer_context_manager_aborts_on_exception(self):
        ch = channel()
        with self.assertRaises(KeyError):
            with ch.writer as w:
                w.write(b"x")
                raise KeyError("boom")
        e = self.assertError(shmchan.Aborted, ch.reader.read_all, timeout=5)
        self.assertIn("KeyError", e.reason)

    def test_peer_closed(self):
        ch = channel()
        ch.writer.write(b"a")
        self.assertEqual(bytes(ch.reader.next(timeout=5).data), b"a")
        ch.reader.close()
        self.assertError(shmchan.PeerClosed, ch.writer.close)

    def test_peer_lost_when_the_writer_process_dies(self):
        p = subprocess.Popen([CLI, "send", "--capacity", "64K", "-"], stdin=subprocess.PIPE,
                             stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
        try:
            r = shmchan.open_reader(p.stdout.readline().decode())
            p.stdin.write(b"z" * 1000)
            p.stdin.flush()
            self.assertEqual(bytes(r.next(timeout=10).data), b"z" * 1000)
        finally:
            p.kill()
            p.wait()
            p.stdin.close()
            p.stdout.close()
        self.assertError(shmchan.PeerLost, r.next, timeout=10)

    def test_corrupt_segment(self):
        ch = channel()
        ch.writer.write(b"x")  # claims the writer; the reader end stays unclaimed
        with open("/dev/shm/shmchan-" + ch.reader_ref["channel_id"], "r+b") as f:
            f.write(b"\0" * 8)  # the magic number
        self.assertError(shmchan.Corrupt, shmchan.open_reader, ch.reader_ref)

    def test_forked_child_cannot_use_the_parents_end(self):
        ch = channel()
        ch.writer.write(b"parent")
        pid = os.fork()
        if pid == 0:  # the child: its copy of the writer is inert
            code = 1
            try:
                ch.writer.write(b"child")
            except shmchan.Forked:
                code = 0
            except BaseException:
                code = 2
            os._exit(code)
        _, status = os.waitpid(pid, 0)
        self.assertEqual(os.waitstatus_to_exitcode(status), 0)
        ch.writer.close()
        self.assertEqual(ch.reader.read_all(timeout=5), b"parent")

    def test_held_limit(self):
        ch = channel(max_held=2)
        for _ in range(3):
            ch.writer.write(b"x")
        a, b = ch.reader.next(timeout=5), ch.reader.next(timeout=5)
        self.assertError(shmchan.HeldLimit, ch.reader.next, timeout=5)
        a.release()
        b.release()

    def test_closed_handles_and_loans(self):
        ch = channel()
        ch.reader.close()
        with self.assertRaises(ValueError):
            ch.reader.next()
        loan = ch.writer.loan(4)
        with self.assertRaises(RuntimeError):  # a loan is open
            ch.writer.free()
        with self.assertRaises(ValueError):
            loan.commit(5)
        loan.abandon()
        with self.assertRaises(ValueError):
            loan.commit()

    def test_class_tree(self):
        for name in ("PeerLost", "Corrupt", "Forked", "ProtocolError", "NoSpace", "PermissionDenied"):
            self.assertTrue(issubclass(getattr(shmchan, name), shmchan.Error))


if __name__ == "__main__":
    unittest.main()
