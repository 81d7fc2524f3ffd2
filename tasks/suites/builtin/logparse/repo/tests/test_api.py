from logparse import render, summarize, summarize_file

LINES = [
    '1.1.1.1 - - [01/Jan/2024:00:10:00 +0000] "GET / HTTP/1.1" 200 100',
    '1.1.1.1 - - [01/Jan/2024:00:20:00 +0000] "GET /a HTTP/1.1" 404 10',
    '2.2.2.2 - - [01/Jan/2024:05:00:00 +0000] "POST /a HTTP/1.1" 500 0',
    '2.2.2.2 - - [01/Jan/2024:05:30:00 +0000] "GET /a HTTP/1.1" 200 -',
    "truncated line",
]


def test_summary_counts():
    s = summarize(LINES)
    assert s["records"] == 4 and s["malformed"] == 1
    assert s["status"] == {200: 2, 404: 1, 500: 1}


def test_summary_bytes_and_paths():
    s = summarize(LINES)
    assert s["bytes_by_host"] == {"1.1.1.1": 110, "2.2.2.2": 0}
    assert s["top_paths"] == [("/a", 3), ("/", 1)]


def test_summary_per_hour_and_errors():
    s = summarize(LINES)
    assert s["per_hour"][0] == 2 and s["per_hour"][5] == 2 and sum(s["per_hour"]) == 4
    assert s["error_rate"] == 0.25


def test_empty_log():
    s = summarize([])
    assert s["records"] == 0 and s["error_rate"] == 0.0


def test_summarize_file(tmp_path):
    path = tmp_path / "access.log"
    path.write_text("\n".join(LINES) + "\n")
    assert summarize_file(path) == summarize(LINES)


def test_render():
    text = render(summarize(LINES))
    assert "records: 4 (malformed: 1)" in text
    assert "busiest hour: 00:00" in text
