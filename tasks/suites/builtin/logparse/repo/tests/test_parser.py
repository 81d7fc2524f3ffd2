from logparse import parse_line, parse_lines

LINE = '127.0.0.1 - frank [10/Oct/2000:13:55:36 -0700] "GET /apache_pb.gif HTTP/1.0" 200 2326'
COMBINED = LINE + ' "http://www.example.com/start.html" "Mozilla/4.08 [en] (Win98; I ;Nav)"'


def test_common_line():
    r = parse_line(LINE)
    assert r.host == "127.0.0.1" and r.user == "frank"
    assert (r.method, r.path, r.protocol) == ("GET", "/apache_pb.gif", "HTTP/1.0")
    assert r.status == 200 and r.size == 2326
    assert r.hour == 13


def test_combined_line():
    r = parse_line(COMBINED, "combined")
    assert r.referer == "http://www.example.com/start.html"
    assert r.agent.startswith("Mozilla/4.08")


def test_dash_size_is_zero():
    r = parse_line(LINE.replace(" 2326", " -"))
    assert r.size == 0


def test_timed_format():
    r = parse_line(LINE + " 1534", "timed")
    assert r.duration_us == 1534


def test_custom_format_string():
    r = parse_line('h1 "GET / HTTP/1.1" 404', '%h "%r" %>s')
    assert r.host == "h1" and r.status == 404 and r.size == 0


def test_non_matching_line_is_none():
    assert parse_line("garbage") is None


def test_bad_request_is_none():
    assert parse_line(LINE.replace("GET /apache_pb.gif HTTP/1.0", "GARBAGE")) is None


def test_parse_lines_counts_bad_and_skips_blank():
    records, bad = parse_lines([LINE, "", "nope", LINE + "\n"])
    assert len(records) == 2 and bad == 1
