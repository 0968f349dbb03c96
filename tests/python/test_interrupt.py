"""A blocking read releases the GIL (another thread runs meanwhile), and Ctrl-C (SIGINT) to a
Python process blocked in a read raises KeyboardInterrupt there."""
import os
import signal
import subprocess
import sys
import threading
import time
import unittest

import shmchan

CHILD = r"""
import sys, shmchan
ch = shmchan.create_channel(64 << 10)
print("blocking", flush=True)
try:
    ch.reader.next()          # nothing will ever come
except KeyboardInterrupt:
    print("interrupted", flush=True)
    sys.exit(3)
print("returned", flush=True)
"""


class Interrupt(unittest.TestCase):
    def test_gil_is_released_while_waiting(self):
        ch = shmchan.create_channel(64 << 10)
        counted = []

        def count():
            n, end = 0, time.monotonic() + 0.3
            while time.monotonic() < end:
                n += 1
            counted.append(n)

        t = threading.Thread(target=count)
        t.start()
        with self.assertRaises(shmchan.Timeout):
            ch.reader.next(timeout=0.5)  # the other thread runs Python meanwhile
        t.join()
        self.assertGreater(counted[0], 1000)

    def test_sigint_interrupts_a_blocking_read(self):
        p = subprocess.Popen([sys.executable, "-c", CHILD], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                             text=True, env=os.environ)
        try:
            self.assertEqual(p.stdout.readline().strip(), "blocking")
            time.sleep(0.3)  # inside next(), waiting on the futex with the GIL released
            p.send_signal(signal.SIGINT)
            out, err = p.communicate(timeout=10)
        finally:
            p.kill()
        self.assertEqual(p.returncode, 3, err)
        self.assertIn("interrupted", out)


if __name__ == "__main__":
    unittest.main()
