"""logparse: parse web-server access logs and summarize them."""

from logparse.api import summarize, summarize_file
from logparse.formats import FORMATS, compile_format
from logparse.parser import Record, parse_line, parse_lines
from logparse.report import render

__all__ = [
    "FORMATS",
    "Record",
    "compile_format",
    "parse_line",
    "parse_lines",
    "render",
    "summarize",
    "summarize_file",
]
