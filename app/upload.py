"""Receiving a multipart upload: the body streamed through streaming-form-data targets.

The file part goes straight into a staged blob while it is hashed, counted and checked against
the size limit; memory stays constant whatever the size. Anything wrong with the body raises an
:class:`~app.errors.ApiError` after the staged blob has been discarded.
"""
import dataclasses
import hashlib
import json
from email.message import Message

import falcon
from streaming_form_data import StreamingFormDataParser
from streaming_form_data.parser import (
    ParseFailedException, UnexpectedPartException, parse_content_boundary,
)
from streaming_form_data.targets import BaseTarget

from app.errors import ApiError, invalid_request_body, property_violation, property_violations

# Large reads keep the per-chunk overhead (parser calls, hashing calls) small: 64 KiB reads cost
# twice as much CPU per byte as 1 MiB reads on our machines.
READ_CHUNK_SIZE = 1024 * 1024
METADATA_LIMIT = 64 * 1024
# libmagic needs only the first few KiB to recognise a format
SNIFF_SIZE = 8 * 1024
DESCRIPTION_LIMIT = 255
PART_NAMES = ("metadata", "file")


def not_multipart():
    return invalid_request_body("The request body is not valid multipart/form-data.")


def file_too_large(limit):
    return property_violation(
        "fileSize", f"File is too large (maximum size is {limit} Bytes)."
    )


class PartTarget(BaseTarget):
    """A target that remembers whether its part arrived once and completely."""

    def __init__(self, name):
        super().__init__()
        self.name = name
        self.started = False
        self.finished = False

    def on_start(self):
        if self.started:
            raise invalid_request_body(f"The part '{self.name}' appears more than once.")
        self.started = True

    def on_finish(self):
        self.finished = True


class MetadataTarget(PartTarget):
    """Keeps the metadata part in memory, up to :data:`METADATA_LIMIT` bytes."""

    def __init__(self):
        super().__init__("metadata")
        self._chunks = []
        self._size = 0

    def on_data_received(self, chunk):
        self._size += len(chunk)
        if self._size > METADATA_LIMIT:
            raise invalid_request_body(
                f"The metadata part is larger than {METADATA_LIMIT} bytes."
            )
        self._chunks.append(chunk)

    @property
    def value(self) -> bytes:
        return b"".join(self._chunks)


class BlobTarget(PartTarget):
    """Streams the file part into a staged blob, hashing and counting on the way."""

    def __init__(self, staged_blob, max_size):
        super().__init__("file")
        self._staged_blob = staged_blob
        self._max_size = max_size
        self._md5 = hashlib.md5()
        self.size = 0
        self.head = b""

    def on_data_received(self, chunk):
        self.size += len(chunk)
        if self.size > self._max_size:
            raise file_too_large(self._max_size)
        if len(self.head) < SNIFF_SIZE:
            self.head += chunk[: SNIFF_SIZE - len(self.head)]
        self._md5.update(chunk)
        self._staged_blob.write(chunk)

    @property
    def md5(self) -> str:
        return self._md5.hexdigest()


@dataclasses.dataclass
class ReceivedUpload:
    """A completely received, well-formed upload whose bytes wait in ``staged_blob``."""

    file_name: str
    description: str
    size: int
    md5: str
    head: bytes
    staged_blob: object


def check_content_type(content_type):
    """406 without a Content-Type, 415 for anything but multipart/form-data, 400 without a
    boundary."""
    if not content_type:
        raise ApiError(falcon.HTTP_406, "MissingContentType", "Missing content-type header.")
    message = Message()
    message["Content-Type"] = content_type
    if message.get_content_type() != "multipart/form-data":
        raise ApiError(
            falcon.HTTP_415, "TypeNotSupported",
            "Expected CONTENT-TYPE to be multipart/form-data but got "
            f"{message.get_content_type()}.",
        )
    if not message.get_boundary():
        raise invalid_request_body("The multipart/form-data Content-Type has no boundary.")


class _TailKeeper:
    """The last bytes of the body, enough to see whether it ends with the closing delimiter."""

    def __init__(self, closing_delimiter):
        self.closing_delimiter = closing_delimiter
        # room for the delimiter, its CRLF and a short epilogue
        self._keep = len(closing_delimiter) + 256
        self._tail = b""

    def add(self, chunk):
        self._tail = (self._tail + chunk[-self._keep:])[-self._keep:]

    @property
    def closed(self) -> bool:
        return self.closing_delimiter in self._tail


def _feed(parser, req, tail):
    """Feed the whole body to ``parser``; the body's length is checked against the header."""
    expected = req.content_length
    # with a Content-Length, bounded_stream never blocks reading past the body; without one
    # (chunked), it would read nothing, so the raw stream is read to its end instead
    stream = req.bounded_stream if expected is not None else req.stream
    received = 0
    while True:
        chunk = stream.read(READ_CHUNK_SIZE)
        if not chunk:
            break
        received += len(chunk)
        tail.add(chunk)
        parser.data_received(chunk)
    if expected is not None and received < expected:
        raise invalid_request_body(
            f"The request body ended after {received} of {expected} bytes."
        )


def _parse_body(req, metadata, blob):
    headers = {"Content-Type": req.content_type}
    parser = StreamingFormDataParser(headers=headers, strict=True)
    parser.register("metadata", metadata)
    parser.register("file", blob)
    tail = _TailKeeper(b"\r\n--" + parse_content_boundary(headers) + b"--")
    try:
        _feed(parser, req, tail)
    except UnexpectedPartException as error:
        raise invalid_request_body(
            f"The part '{error.part_name}' is not expected: send exactly the parts "
            "'metadata' and 'file'."
        ) from None
    except (ParseFailedException, UnicodeDecodeError):
        raise not_multipart() from None
    # streaming-form-data does not report a body cut short before the closing boundary: the
    # delimiter is looked for in the body's tail, and a part that started but never finished
    # is caught below (that delimiter could also stand inside the file's own bytes)
    if not tail.closed:
        if not (metadata.started or blob.started):
            # nothing the parser could recognise, such as bare-LF line endings
            raise not_multipart()
        raise invalid_request_body("The request body ended before the closing boundary.")
    for target in (metadata, blob):
        if not target.started:
            raise invalid_request_body(f"The request is missing the '{target.name}' part.")
    if not (metadata.finished and blob.finished):
        raise invalid_request_body("The request body ended before the closing boundary.")


def parse_metadata(raw: bytes):
    """The file name and description of a metadata part; 400 or 422 when they are unusable."""
    try:
        document = json.loads(raw)
        # JSON may escape lone surrogates (\ud800), which no database can store as text
        json.dumps(document, ensure_ascii=False).encode("utf-8")
    except ValueError:
        # covers bad UTF-8 and lone surrogates too: Unicode errors are ValueErrors
        raise invalid_request_body("The request could not be parsed as JSON.") from None
    if not isinstance(document, dict):
        raise invalid_request_body("The request could not be parsed as JSON.")

    errors = []
    file_name = document.get("fileName")
    if not isinstance(file_name, str) or not file_name.strip():
        errors.append(property_violation("fileName", "File name can't be blank."))
    description = document.get("description")
    if isinstance(description, dict):
        description = description.get("raw")
    if description is None:
        description = ""
    if not isinstance(description, str):
        errors.append(property_violation("description", "Description must be a text."))
    elif len(description) > DESCRIPTION_LIMIT:
        errors.append(property_violation(
            "description",
            f"Description is too long (maximum is {DESCRIPTION_LIMIT} characters).",
        ))
    if errors:
        raise property_violations(errors)
    return file_name, description


def receive_upload(req, blob_store, max_size) -> ReceivedUpload:
    """Read the request body into a staged blob and check it whole.

    On any failure the staged blob is discarded before the error propagates; on success the
    caller owns the staged blob and must commit or discard it.
    """
    check_content_type(req.content_type)
    staged_blob = blob_store.stage()
    try:
        metadata = MetadataTarget()
        blob = BlobTarget(staged_blob, max_size)
        _parse_body(req, metadata, blob)
        file_name, description = parse_metadata(metadata.value)
    except BaseException:
        staged_blob.discard()
        raise
    return ReceivedUpload(
        file_name=file_name, description=description, size=blob.size, md5=blob.md5,
        head=blob.head, staged_blob=staged_blob,
    )
