"""Crash-test child for tests/integration/test_records.py: writes CDRs forever and prints each call_id on stdout only
after its future resolved (i.e. after the commit). The test SIGKILLs it and checks every printed id is in
the database. Usage: crash_records.py DB_PATH PREFIX"""

from __future__ import annotations

import random
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from softswitch.records.store import RecordStore  # noqa: E402


def main() -> None:
    path, prefix = sys.argv[1], sys.argv[2]
    store = RecordStore(path)
    print("ready", flush=True)
    n = 0
    while True:
        # bursts of varying size, so kills land both in single-row and in multi-row batches
        futs = []
        for _ in range(random.randint(1, 60)):
            call_id = f"{prefix}-{n}"
            n += 1
            now = time.time()
            futs.append((call_id, store.add_cdr({"call_id": call_id, "node": "crash", "caller": "1000",
                                                 "called": "2000", "queue": "sales", "started_at": now,
                                                 "ended_at": now, "outcome": "answered",
                                                 "extra": {"n": n}})))
            store.add_queue_event({"queue": "sales", "call_id": call_id, "event": "complete"})
        for call_id, fut in futs:
            fut.result()
            # one write() per line: a line that reached the file survives the kill with the process
            print(call_id, flush=True)


if __name__ == "__main__":
    main()
