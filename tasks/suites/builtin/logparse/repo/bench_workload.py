"""Workload: summarize a day of combined-format access log (about 20k lines)."""

import random

from logparse import summarize

LINES: list[str] = []

PATHS = ["/", "/index.html", "/about", "/api/items", "/api/items/42", "/static/app.js",
         "/static/style.css", "/login", "/search?q=shoes", "/cart"]  # fmt: skip
AGENTS = ["Mozilla/5.0 (X11; Linux x86_64)", "curl/8.4.0", "Googlebot/2.1", "python-requests/2.31"]


def setup():
    rng = random.Random(3)
    LINES.clear()
    for i in range(20_000):
        host = f"10.0.{rng.randint(0, 2)}.{rng.randint(1, 20)}"
        hour, minute = rng.randint(0, 23), rng.randint(0, 59)
        when = f"[12/Mar/2024:{hour:02d}:{minute:02d}:{i % 60:02d} +0000]"
        method = rng.choice(["GET", "GET", "GET", "POST"])
        status = rng.choice([200, 200, 200, 200, 304, 404, 500, 503])
        size = rng.randint(0, 50_000) if status != 304 else "-"
        ref = rng.choice(["-", "https://example.com/", "https://search.example/?q=x"])
        line = (
            f'{host} - - {when} "{method} {rng.choice(PATHS)} HTTP/1.1" {status} {size} '
            f'"{ref}" "{rng.choice(AGENTS)}"'
        )
        if i % 997 == 0:
            line = line[: len(line) // 2]  # a truncated line
        LINES.append(line)


def workload():
    return summarize(LINES, "combined", top=5)
