"""Request bodies the tests send through falcon.testing.

The multipart builder itself is affix's, ``affix.app.testing.multipart``, the one plugin authors
use; ``affix.app.testing.upload_form(file_name, content)`` is an ordinary upload."""
from affix.app.testing import multipart


def upload_body(metadata=b'{"fileName": "cat.png"}', file=b"hello", file_first=False):
    """(body, Content-Type) of an upload with the raw ``metadata`` JSON, its ``file`` part first
    or last."""
    metadata_part = ("metadata", metadata, {"Content-Type": "application/json"})
    file_part = ("file", file, {"Content-Type": "application/octet-stream"})
    parts = [file_part, metadata_part] if file_first else [metadata_part, file_part]
    return multipart(parts)


class UnreadBody:
    """A request body (``wsgi.input``) that records every attempt to read it.

    It records instead of raising, because an exception inside the app would be answered as a
    500 and hide which read happened."""

    def __init__(self):
        self.reads = []

    def read(self, size=-1):
        self.reads.append(("read", size))
        return b""

    def readline(self, size=-1):
        self.reads.append(("readline", size))
        return b""

    def readlines(self, hint=-1):
        self.reads.append(("readlines", hint))
        return []

    def __iter__(self):
        self.reads.append(("iter", None))
        return iter([])
