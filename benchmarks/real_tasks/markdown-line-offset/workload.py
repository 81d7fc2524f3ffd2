"""Render a page holding four 300-line raw-HTML blocks with markdown.markdown().

At the base, HTMLExtractor.line_offset re-matches a regex over the whole
document for every tag, so raw-HTML blocks cost O(lines^2).
"""

import markdown

TEXT = None


def _page():
    parts = ["# A page with raw HTML\n", "Some *intro* text with a [link](http://example.com).\n"]
    for b in range(4):
        lines = ['<div class="block%d">' % b]
        for i in range(300):
            lines.append("<p>%d</p>" % i)
        lines.append("</div>")
        parts.append("\n".join(lines) + "\n")
        parts.append("Paragraph %d after the block, with **bold** text.\n" % b)
    return "\n".join(parts)


def setup():
    global TEXT
    TEXT = _page()


def workload():
    return markdown.markdown(TEXT)


# ruff: noqa: UP031
