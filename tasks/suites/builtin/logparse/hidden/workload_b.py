"""Hidden workload: summarize a timed-format access log with other hosts, paths and users."""

import random

from logparse import summarize

LINES: list[str] = []

# fmt: off
PATHS = ["/", "/shop", "/shop/cart", "/api/v2/orders", "/api/v2/orders/7781", "/img/logo.png",
         "/docs/intro", "/docs/faq#top", "/search?q=blue+hat", "/health", "/robots.txt"]
# fmt: on
USERS = ["-", "-", "-", "alice", "bob", "svc_backup"]


def setup():
    rng = random.Random(7007)
    LINES.clear()
    for i in range(19_000):
        host = f"192.168.{rng.randint(0, 15)}.{rng.randint(1, 254)}"
        day, hour, minute = rng.randint(1, 28), rng.randint(0, 23), rng.randint(0, 59)
        when = f"[{day:02d}/Oct/2023:{hour:02d}:{minute:02d}:{rng.randint(0, 59):02d} -0700]"
        method = rng.choice(["GET", "GET", "POST", "PUT", "DELETE", "HEAD"])
        status = rng.choice([200, 200, 200, 201, 301, 304, 400, 401, 404, 500])
        size = rng.randint(0, 250_000) if status not in (301, 304) else "-"
        proto = rng.choice(["HTTP/1.0", "HTTP/1.1", "HTTP/2"])
        line = (
            f'{host} - {rng.choice(USERS)} {when} "{method} {rng.choice(PATHS)} {proto}" '
            f"{status} {size} {rng.randint(50, 900_000)}"
        )
        if i % 613 == 5:
            line = line.replace('"', "", 1)  # a malformed line
        elif i % 1009 == 0:
            line = ""  # a blank line
        LINES.append(line)


def workload():
    return summarize(LINES, "timed", top=8)
