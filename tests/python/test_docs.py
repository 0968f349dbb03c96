"""docs/python.md's complete example runs as written."""
import os
import re
import subprocess
import sys
import tempfile
import unittest

DOC = os.path.join(os.path.dirname(__file__), "..", "..", "docs", "python.md")


class Docs(unittest.TestCase):
    def test_producer_consumer_example(self):
        with open(DOC) as f:
            blocks = re.findall(r"```python\n(.*?)```", f.read(), re.S)
        files = {b.splitlines()[0][2:].strip(): b for b in blocks if b.startswith("# ")}
        self.assertEqual(sorted(files), ["consumer.py", "producer.py"])
        with tempfile.TemporaryDirectory() as tmp:
            for name, text in files.items():
                with open(os.path.join(tmp, name), "w") as f:
                    f.write(text)
            p = subprocess.run([sys.executable, "producer.py"], cwd=tmp, capture_output=True, text=True, timeout=120)
        self.assertEqual(p.returncode, 0, p.stderr)
        # 100 frames of 480x640 ones times i, then one loan of -1s.
        self.assertIn(f"sum {float(sum(range(100)) * 480 * 640 - 480 * 640)}", p.stdout)
        self.assertIn("message: done", p.stdout)


if __name__ == "__main__":
    unittest.main()
