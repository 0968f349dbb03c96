"""docs/python.md's examples run as written."""
import os
import re
import subprocess
import sys
import tempfile
import unittest

DOC = os.path.join(os.path.dirname(__file__), "..", "..", "docs", "python.md")


class Docs(unittest.TestCase):
    def setUp(self):
        with open(DOC) as f:
            blocks = re.findall(r"```python\n(.*?)```", f.read(), re.S)
        self.files = {b.splitlines()[0][2:].strip(): b for b in blocks if b.startswith("# ")}
        self.tmp = tempfile.TemporaryDirectory()
        for name, text in self.files.items():
            with open(os.path.join(self.tmp.name, name), "w") as f:
                f.write(text)

    def tearDown(self):
        self.tmp.cleanup()

    def run_example(self, name):
        p = subprocess.run([sys.executable, name], cwd=self.tmp.name, capture_output=True, text=True, timeout=120)
        self.assertEqual(p.returncode, 0, p.stderr)
        return p.stdout

    def test_every_example_is_run_here(self):
        self.assertEqual(sorted(self.files), ["consumer.py", "fanout.py", "live.py", "producer.py"])

    def test_producer_consumer_example(self):
        out = self.run_example("producer.py")
        # 100 frames of 480x640 ones times i, then one loan of -1s.
        self.assertIn(f"sum {float(sum(range(100)) * 480 * 640 - 480 * 640)}", out)
        self.assertIn("message: done", out)

    def test_fanout_example(self):
        out = self.run_example("fanout.py")
        self.assertIn("['done', 'done', 'done']", out)
        self.assertIn("every reader got every byte: True", out)

    def test_live_example(self):
        out = self.run_example("live.py")
        m = re.search(r"missed (\d+) frames \((\d+) bytes\)", out)
        self.assertIsNotNone(m, out)
        records, nbytes = int(m[1]), int(m[2])
        self.assertGreater(records, 900)  # a 64 KiB ring keeps about 60 of the 1000
        self.assertEqual(nbytes, records * (1024 + 64))
        self.assertIn("read whole frames up to 999", out)


if __name__ == "__main__":
    unittest.main()
