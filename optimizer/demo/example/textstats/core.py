"""Word statistics: written plainly, and slowly."""

PUNCTUATION = ".,;:!?\"'()"


def normalize(word: str) -> str:
    """Lower case, without surrounding punctuation."""
    return word.lower().strip(PUNCTUATION)


def unique_words(text: str) -> list[str]:
    """The distinct words of ``text``, in order of first appearance."""
    seen: list[str] = []
    for raw in text.split():
        word = normalize(raw)
        if word and word not in seen:
            seen.append(word)
    return seen


def longest_word(text: str) -> str:
    """The longest word (the first one among equals); '' for a text with no words."""
    best = ""
    for raw in text.split():
        word = normalize(raw)
        if len(word) > len(best):
            best = word
    return best


def word_counts(text: str) -> dict[str, int]:
    """How often each word occurs, keyed in order of first appearance."""
    counts: dict[str, int] = {}
    for word in unique_words(text):
        counts[word] = sum(1 for raw in text.split() if normalize(raw) == word)
    return counts
