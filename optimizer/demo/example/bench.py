"""The workload `optimizer demo` times: word counts of a 2,000-word text."""

import random

from textstats import word_counts

TEXT = ""


def setup():
    global TEXT
    rng = random.Random(0)
    vocabulary = [f"word{i}" for i in range(150)]
    TEXT = " ".join(
        rng.choice(vocabulary).capitalize() + rng.choice(["", ",", "."]) for _ in range(2000)
    )


def workload():
    return word_counts(TEXT)
