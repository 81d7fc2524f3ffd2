"""Hidden workload: pack weather-station readings (another schema) into a blob and a file."""

import os
import random
import tempfile

from recpack import Schema, encode_records, read_records, write_records

SCHEMA = Schema.of(ts="int", station="str", temp="float", humidity="float", alarm="bool",
                   count="int")  # fmt: skip
RECORDS: list[dict] = []
PATH = os.path.join(tempfile.gettempdir(), f"recpack-hidden-{os.getpid()}.rpk")
PLACES = ["Zürich", "Tromsø", "São Paulo", "Kraków", "Reykjavík", "Oslo", "Lima", "東京"]


def setup():
    rng = random.Random(7009)
    RECORDS.clear()
    for i in range(5_200):
        RECORDS.append(
            {
                "ts": 1_696_000_000 + 60 * i + rng.randint(0, 59),
                "station": f"{rng.choice(PLACES)}-{rng.randint(1, 40)}",
                "temp": round(rng.gauss(12.0, 9.0), 2),
                "humidity": rng.random(),
                "alarm": rng.random() < 0.03,
                "count": rng.randint(-5, 2_000_000),
            }
        )


def workload():
    blob = encode_records(RECORDS, SCHEMA)
    size = write_records(PATH, RECORDS, SCHEMA)
    back = read_records(PATH, SCHEMA)
    os.remove(PATH)
    return len(blob), size, len(back)
