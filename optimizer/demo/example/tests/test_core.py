from textstats import longest_word, unique_words, word_counts


def test_unique_words_keep_first_appearance_order():
    assert unique_words("b a b c a") == ["b", "a", "c"]


def test_words_are_case_and_punctuation_insensitive():
    assert unique_words("Hello, hello! HELLO.") == ["hello"]
    assert word_counts("Hello, hello! world") == {"hello": 2, "world": 1}


def test_counts_keep_first_appearance_order():
    assert list(word_counts("z y z x y z")) == ["z", "y", "x"]
    assert word_counts("z y z x y z") == {"z": 3, "y": 2, "x": 1}


def test_empty_text():
    assert unique_words("") == [] and word_counts("  ") == {} and longest_word("") == ""


def test_punctuation_only_words_are_skipped():
    assert word_counts("a ... b !!") == {"a": 1, "b": 1}


def test_longest_word_first_among_equals():
    assert longest_word("ab cd efg hij") == "efg"
