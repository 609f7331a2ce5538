"""Serving blob bytes: Content-Disposition for any file name, and single byte ranges."""
import re

import falcon

from affix.app.uploads.content_types import content_disposition
from affix.app.http.errors import ApiError

STREAM_CHUNK_SIZE = 1024 * 1024
_RANGE = re.compile(r"^\s*bytes\s*=\s*(\d*)\s*-\s*(\d*)\s*$")


def _before(last_digits: str, first_digits: str) -> bool:
    """Whether the position ``last_digits`` names comes before ``first_digits``'s, compared
    as written (never converted: either may be of any length)."""
    last, first = last_digits.lstrip("0"), first_digits.lstrip("0")
    return (len(last), last) < (len(first), first)


def _position(digits: str, size: int) -> int:
    """A byte position of a Range header. One of more digits than ``size`` has lies past the
    end whatever it is: it stands as the smallest number of that many digits, and is never
    converted (Python refuses numbers of over 4,300 digits)."""
    digits = digits.lstrip("0") or "0"
    return int(digits) if len(digits) <= len(str(size)) else 10 ** len(str(size))


def requested_range(header, size):
    """The (first, last) byte positions of a single-range request, or None to send it all.

    Several ranges, or a header we cannot read, are answered with the whole body, which RFC 9110
    allows; a range that lies wholly past the end is refused with 416.
    """
    if not header:
        return None
    match = _RANGE.match(header)
    if not match:
        return None
    first_text, last_text = match.groups()
    if not first_text:
        if not last_text:
            return None
        suffix = _position(last_text, size)
        if suffix == 0 or size == 0:
            raise _unsatisfiable(size)
        return max(size - suffix, 0), size - 1
    if last_text and _before(last_text, first_text):
        # "bytes=5-3" is not a valid range, whatever the positions' sizes: ignored, like any
        # unreadable header
        return None
    first = _position(first_text, size)
    if first >= size:
        raise _unsatisfiable(size)
    last = size - 1 if not last_text else min(_position(last_text, size), size - 1)
    return first, last


def _unsatisfiable(size):
    return ApiError(
        falcon.HTTP_416, "InvalidRequestBody", "The requested range cannot be satisfied.",
        headers={"Content-Range": f"bytes */{size}"},
    )


def _read_range(blob_file, first, length):
    try:
        blob_file.seek(first)
        remaining = length
        while remaining:
            chunk = blob_file.read(min(STREAM_CHUNK_SIZE, remaining))
            if not chunk:
                break
            remaining -= len(chunk)
            yield chunk
    finally:
        blob_file.close()


def send_blob(req, resp, open_blob, size, presentation, file_name, honour_range=True):
    """Answer with the blob's bytes: the whole of them, or the one range requested when
    ``honour_range`` (an ``If-Range`` that no longer holds asks for the whole). A HEAD gets
    the same headers, its Content-Length among them, and the blob is never opened: Falcon
    would drop an open stream unread and unclosed.

    The range is checked before anything else is set: a 416 must not go out with the file's
    Content-Disposition, nor leave a blob open.
    """
    byte_range = requested_range(req.get_header("Range"), size) if honour_range else None
    resp.content_type = presentation.content_type
    resp.set_header("Content-Disposition", content_disposition(presentation.inline, file_name))
    resp.set_header("X-Content-Type-Options", "nosniff")
    resp.set_header("Accept-Ranges", "bytes")
    first, last = (0, size - 1) if byte_range is None else byte_range
    length = last - first + 1
    if byte_range is not None:
        resp.status = falcon.HTTP_206
        resp.set_header("Content-Range", f"bytes {first}-{last}/{size}")
    if req.method == "HEAD":
        resp.content_length = length
        return
    blob_file = open_blob()
    if byte_range is None:
        # a real file lets the server use wsgi.file_wrapper (sendfile)
        resp.set_stream(blob_file, size)
        return
    resp.set_stream(_read_range(blob_file, first, length), length)
