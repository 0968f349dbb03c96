"""asyncio: fileno() with loop.add_reader, and `async for`, while other tasks keep running."""
import asyncio
import hashlib
import os
import tempfile
import unittest

import numpy

import shmchan
from support import start_send


class Asyncio(unittest.TestCase):
    def test_async_for_over_shmchan_send(self):
        data = os.urandom(3 * 1024 * 1024 + 17)
        with tempfile.NamedTemporaryFile() as f:
            f.write(data)
            f.flush()
            p, ref = start_send(f.name, capacity="256K")

            async def main():
                r = shmchan.open_reader(ref)
                h, n = hashlib.sha256(), 0
                async for view in r:
                    h.update(numpy.frombuffer(view, dtype=numpy.uint8))
                    n += view.nbytes
                return h.digest(), n

            digest, n = asyncio.run(main())
            self.assertEqual(p.wait(30), 0)
        self.assertEqual(n, len(data))
        self.assertEqual(digest, hashlib.sha256(data).digest())

    def test_async_for_leaves_the_loop_free_for_the_writer_task(self):
        # The writer is another task of the same loop: a reader that blocked the loop while
        # waiting would never see its data (the test would hang until ctest's timeout); one
        # that missed a wake-up would fail at wait_for's.
        ch = shmchan.create_channel(64 << 10)

        async def main():
            async def produce():
                for i in range(3):
                    await asyncio.sleep(0.02)
                    ch.writer.write(bytes([i]) * 1000)
                ch.writer.close()

            task = asyncio.create_task(produce())
            got = [bytes(v) async for v in ch.reader]
            await task
            return got

        got = asyncio.run(asyncio.wait_for(main(), 10))
        self.assertEqual(got, [bytes([i]) * 1000 for i in range(3)])

    def test_add_reader_wakes_when_the_writer_writes_later(self):
        ch = shmchan.create_channel(64 << 10)

        async def main():
            loop = asyncio.get_running_loop()

            async def later():
                await asyncio.sleep(0.05)
                ch.writer.send_message("hi")
                ch.writer.write(b"payload")
                await asyncio.sleep(0.05)
                ch.writer.close()

            w = asyncio.create_task(later())
            got = []
            # By hand: the fd polls readable when try_next() may have something.
            fd = ch.reader.fileno()
            while True:
                it = ch.reader.try_next()
                if it is None:
                    ready = loop.create_future()
                    loop.add_reader(fd, lambda: ready.done() or ready.set_result(None))
                    try:
                        await asyncio.wait_for(ready, 10)
                    finally:
                        loop.remove_reader(fd)
                    try:
                        os.read(fd, 8)
                    except BlockingIOError:
                        pass
                    continue
                if it.kind == "end":
                    break
                got.append(it.text if it.kind == "message" else bytes(it.data))
            await w
            return got

        got = asyncio.run(main())
        self.assertEqual(got, ["hi", b"payload"])

    def test_aitems_raises_aborted(self):
        ch = shmchan.create_channel(64 << 10)

        async def main():
            ch.writer.write(b"a")
            ch.writer.abort("stop")
            out = []
            with self.assertRaises(shmchan.Aborted) as cm:
                async for it in ch.reader.aitems():
                    out.append(bytes(it.data))
            return out, cm.exception.reason

        self.assertEqual(asyncio.run(main()), ([b"a"], "stop"))


if __name__ == "__main__":
    unittest.main()
