"""Log formats: Apache-style format strings turned into regular expressions."""

from __future__ import annotations

import re

FORMATS = {
    "common": '%h %l %u %t "%r" %>s %b',
    "combined": '%h %l %u %t "%r" %>s %b "%{Referer}i" "%{User-agent}i"',
    "timed": '%h %l %u %t "%r" %>s %b %D',
}

DIRECTIVES = {
    "h": ("host", r"\S+"),
    "l": ("ident", r"\S+"),
    "u": ("user", r"\S+"),
    "t": ("time", r"\[[^\]]+\]"),
    "r": ("request", r'[^"]*'),
    ">s": ("status", r"\d{3}"),
    "s": ("status", r"\d{3}"),
    "b": ("size", r"\d+|-"),
    "D": ("duration", r"\d+"),
    "{Referer}i": ("referer", r'[^"]*'),
    "{User-agent}i": ("agent", r'[^"]*'),
}


def tokenize(fmt: str) -> list[tuple[str, str]]:
    """Split a format string into ("literal", text) and ("directive", name) tokens."""
    tokens: list[tuple[str, str]] = []
    literal = ""
    i = 0
    while i < len(fmt):
        ch = fmt[i]
        if ch != "%":
            literal += ch
            i += 1
            continue
        if literal:
            tokens.append(("literal", literal))
            literal = ""
        for name in sorted(DIRECTIVES, key=len, reverse=True):
            if fmt.startswith(name, i + 1):
                tokens.append(("directive", name))
                i += 1 + len(name)
                break
        else:
            raise ValueError(f"unknown directive at {i} in {fmt!r}")
    if literal:
        tokens.append(("literal", literal))
    return tokens


def compile_format(fmt: str) -> re.Pattern[str]:
    """The regular expression for a named format (see FORMATS) or a format string."""
    fmt = FORMATS.get(fmt, fmt)
    parts = []
    seen = set()
    for kind, text in tokenize(fmt):
        if kind == "literal":
            parts.append(re.escape(text))
            continue
        field, regex = DIRECTIVES[text]
        if field in seen:
            raise ValueError(f"field {field!r} appears twice in {fmt!r}")
        seen.add(field)
        parts.append(f"(?P<{field}>{regex})")
    return re.compile("^" + "".join(parts) + "$")
