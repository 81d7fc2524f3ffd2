"""Workload: pack sensor readings into a blob and a file, and read the file back."""

import os
import random
import tempfile

from recpack import Schema, encode_records, read_records, write_records

SCHEMA = Schema.of(id="int", sensor="str", value="float", delta="int", ok="bool")
RECORDS: list[dict] = []
PATH = os.path.join(tempfile.gettempdir(), "recpack-bench.rpk")


def setup():
    rng = random.Random(5)
    RECORDS.clear()
    for i in range(7_000):
        RECORDS.append(
            {
                "id": i,
                "sensor": f"sensor-{rng.randint(0, 400)}",
                "value": rng.uniform(-50.0, 50.0),
                "delta": rng.randint(-100_000, 100_000),
                "ok": rng.random() > 0.1,
            }
        )


def workload():
    blob = encode_records(RECORDS, SCHEMA)
    size = write_records(PATH, RECORDS, SCHEMA)
    back = read_records(PATH, SCHEMA)
    os.remove(PATH)
    return len(blob), size, len(back)
