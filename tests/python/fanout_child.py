"""One reader process of test_readers.py: `fanout_child.py MODE REF_JSON`. It opens its end
from the ref (claimed at once), then:
  sum    reads every byte (iteration), prints {"sha256", "bytes"}
  hold   reads one item, says "ready", then sleeps until it is killed
  leave  reads one item, says "ready", closes its end with records unread and exits
  lag    says "ready", waits for a line on stdin before reading, then prints what it got:
         {"gap": [records, bytes] of each gap, "seqs": each record's number, "bad": records
         whose bytes do not match their number or were overwritten while read}
"""
import hashlib
import json
import sys
import time

import shmchan

from support import record_ok


def main(mode, ref):
    r = shmchan.open_reader(ref)
    if mode == "sum":
        digest, total = hashlib.sha256(), 0
        for view in r:
            digest.update(view)
            total += view.nbytes
        print(json.dumps({"sha256": digest.hexdigest(), "bytes": total}), flush=True)
    elif mode in ("hold", "leave"):
        r.next(timeout=30)
        print("ready", flush=True)
        if mode == "leave":
            r.close()
            return
        while True:
            time.sleep(60)
    elif mode == "lag":
        print("ready", flush=True)
        sys.stdin.readline()  # the writer has lapped us by now
        out = {"gaps": [], "seqs": [], "bad": []}
        for it in r.items(timeout=30):
            if it.kind == "gap":
                out["gaps"].append([it.gap.records, it.gap.bytes])
                continue
            seq = int.from_bytes(it.data[:8], "little")
            out["seqs"].append(seq)
            if not record_ok(it.data) or not it.intact:
                out["bad"].append(seq)
        print(json.dumps(out), flush=True)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
