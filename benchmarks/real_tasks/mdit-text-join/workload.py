"""Render, with MarkdownIt().render(), a document whose table-of-identifiers
paragraph (OCR-style output) holds a long run of underscores.

Each underscore is a delimiter that becomes its own text token; at the base
fragments_join / text_join merge the run pairwise (a + b), rebuilding the
growing string for every token, O(L*k) for a run of k tokens of L chars.
The expert joins each run once with "".join().
"""

from markdown_it import MarkdownIt

TEXT = None
N = 800


def setup():
    global TEXT
    # OCR output where each row's separator was read as an underscore:
    # one paragraph, N rows of about 100 characters joined by "_".
    ids = "_".join(
        "row %04d: the quick brown fox jumps over the lazy dog, then naps in the sun %04d" % (i, i)
        for i in range(N)
    )
    TEXT = (
        "# Scanned index\n\n"
        "Some *normal* text with `code` and a [link](https://example.com).\n\n" + ids + "\n\n"
        "- item one\n- item **two**\n"
    )


def workload():
    return MarkdownIt().render(TEXT)


# ruff: noqa: UP031
