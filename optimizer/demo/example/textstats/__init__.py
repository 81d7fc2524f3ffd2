"""Word statistics of a text (the example `optimizer demo` speeds up)."""

from textstats.core import longest_word, unique_words, word_counts

__all__ = ["longest_word", "unique_words", "word_counts"]
