"""What an upload is (sniffed from its bytes) and how it may be served.

The client's word on a content type is never used: libmagic decides from the first bytes. Since
libmagic cannot tell every active format (it calls an HTML fragment ``text/plain``), what is
served inline is decided by an allow-list, not by what the sniffing says is dangerous.
"""
import dataclasses
import queue
import re
import urllib.parse

import magic

# Formats a browser renders without running anything the upload could contain.
INLINE_TYPES = frozenset({
    "image/png", "image/jpeg", "image/gif", "image/webp", "image/bmp", "image/avif",
    "application/pdf",
    "video/mp4", "video/webm", "video/ogg", "video/quicktime",
})
OCTET_STREAM = "application/octet-stream"
# How much of a file libmagic is given. Its cost grows with the bytes it reads (on text, about
# 1.5 ms for 8 KiB, 1.2 to 1.3 ms for 4 KiB); 4 KiB is the least that gives the same answers as
# 8 KiB on the test suite's kinds of file and on the fuzzer's (python -m tests.bench.sniffing;
# held by tests/unit/uploads/test_content_types.py). Below it, some random bytes libmagic calls an
# executable only once it reads past 2 KiB answer otherwise.
SNIFF_PREFIX = 4 * 1024
# libmagic's names for "no bytes" and for non-text data, where no charset applies
_NOT_TEXT_ENCODINGS = {"binary", "unknown-8bit", ""}


@dataclasses.dataclass(frozen=True)
class Sniffed:
    content_type: str
    charset: str | None


class ContentSniffer:
    """libmagic, asked for a MIME type and a text encoding in one call (each call costs up to
    3 ms on text). It reads the first ``prefix`` bytes of what it is given.

    One sniffer serves every thread of a worker. A libmagic handle serves one thread at a time
    (python-magic holds a lock per handle), and libmagic runs without the GIL, so the sniffer
    keeps a pool of handles rather than one: threads that sniff at once each use a handle of
    their own instead of queueing on one lock. A handle is made when every other is in use
    (about 0.2 ms and 0.2 MB here), so there are never more than the threads that sniffed at
    the same moment.
    """

    def __init__(self, prefix=SNIFF_PREFIX):
        self._idle = queue.SimpleQueue()
        # the first now: a libmagic that cannot load its database fails the app's start
        self._idle.put(_new_handle())
        self._prefix = prefix

    def _describe(self, data: bytes) -> str:
        try:
            handle = self._idle.get_nowait()
        except queue.Empty:
            handle = _new_handle()
        try:
            return handle.from_buffer(data)
        finally:
            self._idle.put(handle)

    def sniff(self, head: bytes) -> Sniffed:
        if not head:
            return Sniffed(OCTET_STREAM, None)
        # "text/plain; charset=us-ascii"
        content_type, _, parameter = self._describe(head[:self._prefix]).partition(";")
        content_type = content_type.strip()
        encoding = parameter.strip().removeprefix("charset=")
        if not content_type.startswith("text/") or encoding in _NOT_TEXT_ENCODINGS:
            return Sniffed(content_type, None)
        return Sniffed(content_type, encoding)


def _new_handle():
    return magic.Magic(mime=True, mime_encoding=True)


@dataclasses.dataclass(frozen=True)
class Presentation:
    """The Content-Type header and disposition a stored attachment is served with."""

    content_type: str
    inline: bool


def presentation(content_type: str, charset: str | None) -> Presentation:
    if content_type in INLINE_TYPES:
        return Presentation(content_type, True)
    if content_type.startswith("text/"):
        # any text, HTML included, is shown as plain text: never interpreted by the browser
        return Presentation(f"text/plain; charset={charset or 'utf-8'}", True)
    return Presentation(OCTET_STREAM, False)


# what a quoted-string in a header may carry as is; everything else becomes "_"
_UNSAFE_IN_QUOTED = re.compile(r'[^\x20-\x7e]|["\\]')


def content_disposition(inline: bool, file_name: str) -> str:
    """RFC 6266: an ASCII ``filename`` for old clients, the exact name in ``filename*``.

    Neither can break the header: the ASCII form has every control character, quote and
    non-ASCII character replaced, the extended form is percent-encoded.
    """
    kind = "inline" if inline else "attachment"
    ascii_name = _UNSAFE_IN_QUOTED.sub("_", file_name)
    encoded = urllib.parse.quote(file_name, safe="")
    return f"{kind}; filename=\"{ascii_name}\"; filename*=UTF-8''{encoded}"


def store_download_url(blob_store, record):
    """A URL where the blob store itself serves ``record``'s bytes (an S3 pre-signed GET),
    with the Content-Type and Content-Disposition that :func:`send_blob` would send; None
    when the store has no such URL and the app serves the bytes."""
    served = presentation(record.content_type, record.charset)
    return blob_store.download_url(
        record.storage_key, served.content_type,
        content_disposition(served.inline, record.file_name),
    )
