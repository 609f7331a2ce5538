"""Pure functions behind the HTTP face: byte ranges, Content-Disposition, Formattable HTML, how
a content type is served, and what libmagic calls the formats the HTTP tests rely on."""
import pytest

from affix.app.uploads.content_types import ContentSniffer, Presentation, Sniffed, presentation
from affix.app.http.downloads import requested_range
from affix.app.uploads.content_types import content_disposition
from affix.app.http.errors import ApiError
from affix.app.http.representers import formattable
from support.content import png_bytes

# header, size, the (first, last) positions or None for the whole body
RANGES = {
    "no header": (None, 10, None),
    "empty header": ("", 10, None),
    "first five": ("bytes=0-4", 10, (0, 4)),
    "one byte": ("bytes=9-9", 10, (9, 9)),
    "open end": ("bytes=5-", 10, (5, 9)),
    "suffix": ("bytes=-3", 10, (7, 9)),
    "suffix of the whole file": ("bytes=-10", 10, (0, 9)),
    "suffix larger than the file": ("bytes=-30", 10, (0, 9)),
    "last beyond the end is clipped": ("bytes=8-100", 10, (8, 9)),
    "whole file": ("bytes=0-", 10, (0, 9)),
    "last before first": ("bytes=5-3", 10, None),
    "several ranges": ("bytes=0-1,3-4", 10, None),
    "neither end": ("bytes=-", 10, None),
    "no dash": ("bytes=5", 10, None),
    "letters": ("bytes=a-b", 10, None),
    "negative": ("bytes=-5-9", 10, None),
    "unknown unit": ("items=0-4", 10, None),
    "garbage": ("garbage", 10, None),
}


@pytest.mark.parametrize("header, size, expected", RANGES.values(), ids=RANGES.keys())
def test_requested_range(header, size, expected):
    assert requested_range(header, size) == expected


# header, size: no byte of the range exists (RFC 9110 14.1.1)
UNSATISFIABLE = {
    "first at the end": ("bytes=10-", 10),
    "first past the end": ("bytes=11-20", 10),
    "empty suffix": ("bytes=-0", 10),
    "empty file, open range": ("bytes=0-", 0),
    "empty file, closed range": ("bytes=0-4", 0),
    "empty file, suffix": ("bytes=-1", 0),
}


@pytest.mark.parametrize("header, size", UNSATISFIABLE.values(), ids=UNSATISFIABLE.keys())
def test_unsatisfiable_range_is_416_with_the_size(header, size):
    with pytest.raises(ApiError) as raised:
        requested_range(header, size)
    error = raised.value
    assert error.status == "416 Range Not Satisfiable"
    assert error.identifier == "InvalidRequestBody"
    assert error.message == "The requested range cannot be satisfied."
    assert error.headers == {"Content-Range": f"bytes */{size}"}


# inline, file name, the exact header
DISPOSITIONS = {
    "plain inline": (True, "cat.png", "inline; filename=\"cat.png\"; filename*=UTF-8''cat.png"),
    "space": (False, "a b.zip", "attachment; filename=\"a b.zip\"; filename*=UTF-8''a%20b.zip"),
    "quote and backslash": (
        False, 'q"\\.txt', "attachment; filename=\"q__.txt\"; filename*=UTF-8''q%22%5C.txt"),
    "controls": (
        False, "a\r\nb\x00.txt",
        "attachment; filename=\"a__b_.txt\"; filename*=UTF-8''a%0D%0Ab%00.txt"),
    "non-ASCII": (
        True, "Ü✓.txt", "inline; filename=\"__.txt\"; filename*=UTF-8''%C3%9C%E2%9C%93.txt"),
    "path": (
        False, "../../etc/passwd",
        "attachment; filename=\"../../etc/passwd\"; filename*=UTF-8''..%2F..%2Fetc%2Fpasswd"),
    "parameter separators": (
        False, "a;b,c=d.txt",
        "attachment; filename=\"a;b,c=d.txt\"; filename*=UTF-8''a%3Bb%2Cc%3Dd.txt"),
    "percent": (
        False, "100%.txt", "attachment; filename=\"100%.txt\"; filename*=UTF-8''100%25.txt"),
}


@pytest.mark.parametrize("inline, name, expected", DISPOSITIONS.values(), ids=DISPOSITIONS.keys())
def test_content_disposition(inline, name, expected):
    assert content_disposition(inline, name) == expected


# raw text, the html it renders to
FORMATTABLES = {
    "two paragraphs": ("a\n\nb", "<p>a</p><p>b</p>"),
    "markup is escaped": ("<b>x</b>", "<p>&lt;b&gt;x&lt;/b&gt;</p>"),
    "quotes and ampersand": ("\"a\" & 'b'", "<p>&quot;a&quot; &amp; &#x27;b&#x27;</p>"),
    "single newline": ("a\nb", "<p>a<br>b</p>"),
    "CRLF paragraphs": ("a\r\n\r\nb", "<p>a</p><p>b</p>"),
    "blank line of spaces": ("a\n  \nb", "<p>a</p><p>b</p>"),
    "surrounding whitespace": ("  a  \n\n\n", "<p>a</p>"),
    "empty": ("", ""),
    "only whitespace": (" \n\n ", ""),
}


@pytest.mark.parametrize("raw, html", FORMATTABLES.values(), ids=FORMATTABLES.keys())
def test_formattable_keeps_raw_and_renders_escaped_paragraphs(raw, html):
    assert formattable(raw) == {"format": "plain", "raw": raw, "html": html}


# sniffed type and charset, how it is served
PRESENTATIONS = {
    "inline image": ("image/png", None, Presentation("image/png", True)),
    "pdf": ("application/pdf", None, Presentation("application/pdf", True)),
    "text with a charset": (
        "text/plain", "us-ascii", Presentation("text/plain; charset=us-ascii", True)),
    "text without a charset": ("text/plain", None, Presentation("text/plain; charset=utf-8", True)),
    "html as its source": ("text/html", "utf-8", Presentation("text/plain; charset=utf-8", True)),
    "svg": ("image/svg+xml", None, Presentation("application/octet-stream", False)),
    "xhtml": ("application/xhtml+xml", None, Presentation("application/octet-stream", False)),
    "zip": ("application/zip", None, Presentation("application/octet-stream", False)),
    "octet-stream": (
        "application/octet-stream", None, Presentation("application/octet-stream", False)),
}


@pytest.mark.parametrize(
    "content_type, charset, expected", PRESENTATIONS.values(), ids=PRESENTATIONS.keys()
)
def test_presentation(content_type, charset, expected):
    assert presentation(content_type, charset) == expected


# bytes, what libmagic makes of them: the HTTP tests depend on these answers
SNIFFS = {
    "png": (png_bytes(), Sniffed("image/png", None)),
    "ascii text": (b"hello world\n", Sniffed("text/plain", "us-ascii")),
    "utf-8 text": ("Grüße ✓\n".encode(), Sniffed("text/plain", "utf-8")),
    "html": (b"<html><body><script>alert(1)</script></body></html>",
             Sniffed("text/html", "us-ascii")),
    "svg": (b'<svg xmlns="http://www.w3.org/2000/svg"><rect width="1" height="1"/></svg>\n',
            Sniffed("image/svg+xml", None)),
    "nothing": (b"", Sniffed("application/octet-stream", None)),
}


@pytest.fixture(scope="module")
def sniffer():
    return ContentSniffer()


@pytest.mark.parametrize("head, expected", SNIFFS.values(), ids=SNIFFS.keys())
def test_sniff(sniffer, head, expected):
    assert sniffer.sniff(head) == expected
