"""The k most frequent words of a text.

Input: a line k, then the text. Words are separated by whitespace and compared in lower case.
Output: up to k lines "word count", by count (highest first), ties by word (alphabetical).
"""

import sys


def top_words(words, k):
    seen = []
    counts = []
    for word in words:
        if word in seen:
            counts[seen.index(word)] += 1
        else:
            seen.append(word)
            counts.append(1)
    pairs = list(zip(seen, counts, strict=True))
    pairs.sort(key=lambda p: (-p[1], p[0]))
    return pairs[:k]


def main():
    text = sys.stdin.read()
    head, _, body = text.partition("\n")
    if not head.strip():
        return
    k = int(head)
    words = [w.lower() for w in body.split()]
    out = [f"{word} {count}" for word, count in top_words(words, k)]
    sys.stdout.write("\n".join(out) + ("\n" if out else ""))


if __name__ == "__main__":
    main()
