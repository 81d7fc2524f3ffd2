"""Hidden check: summaries across several formats, odd lines and non-ASCII paths."""

import json
import os
import sys

sys.path.insert(0, os.getcwd())

from logparse import parse_line, summarize  # noqa: E402

BASE = '{host} - {user} [0{d}/Feb/2024:{h:02d}:00:00 +0100] "{req}" {status} {size}'
rows = []
for i in range(300):
    rows.append(
        BASE.format(
            host=f"h{i % 7}",
            user="-" if i % 3 else "ünïcode",
            d=1 + i % 9,
            h=(i * 5) % 24,
            req=["GET /café HTTP/1.1", "GET /a%20b HTTP/2", "HEAD / HTTP/1.0", "BAD"][i % 4],
            status=[200, 301, 404, 502, 200][i % 5],
            size=["-", "0", str(i * 13)][i % 3],
        )
    )
rows += ["", "   ", "x" * 50, rows[0] + " trailing", rows[1][:-2]]
timed = [r + f" {i * 31}" for i, r in enumerate(rows[:80])]
combined = [r + ' "-" "agent/\u00e9 1.0"' for r in rows[:80]]

out = {
    "common": summarize(rows, "common", top=20),
    "timed": summarize(timed, "timed"),
    "combined": summarize(combined, "combined", top=3),
    "custom": summarize(
        [f"{r.split(' ')[0]} {200 + i % 3}" for i, r in enumerate(rows[:60])], "%h %s"
    ),  # fmt: skip
    "mixed": [repr(parse_line(line, fmt)) for line in rows[:30] for fmt in ("common", "timed")],
}
print(json.dumps(out, sort_keys=True, default=str, ensure_ascii=False))
