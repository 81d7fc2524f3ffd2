"""Hidden check: encodings of non-ASCII text, extreme integers and odd floats."""

import hashlib
import os
import sys
import tempfile

sys.path.insert(0, os.getcwd())

from recpack import Schema, decode_records, encode_records, read_records, write_records  # noqa: E402

SCHEMA = Schema.of(n="int", s="str", x="float", b="bool")
TEXTS = ["", "é", "naïve café", "日本語テキスト", "emoji 🎉🎉", "a" * 200, "ß" * 70, "\x00\x7f"]
INTS = [0, -1, 1, 2**63, -(2**63), 2**70 + 3, -(10**30), 127, 128, -129]
FLOATS = [0.0, -0.0, 1.5, -1e-310, 1e308, float("inf"), float("-inf")]
records = []
for i in range(400):
    records.append(
        {
            "n": INTS[i % len(INTS)] * (1 if i % 3 else -1),
            "s": TEXTS[i % len(TEXTS)] * (1 + i % 4),
            "x": FLOATS[i % len(FLOATS)],
            "b": i % 5 == 0,
        }
    )
blob = encode_records(records, SCHEMA)
print(len(blob), hashlib.sha256(blob).hexdigest())
for record in records[:16]:
    print(encode_records([record], SCHEMA).hex())
print(decode_records(blob, SCHEMA) == records)
with tempfile.TemporaryDirectory() as tmp:
    path = os.path.join(tmp, "x.rpk")
    size = write_records(path, records, SCHEMA)
    with open(path, "rb") as f:
        print(size, hashlib.sha256(f.read()).hexdigest())
    print(read_records(path, SCHEMA) == records)
