"""Receiving a multipart upload: the body streamed through streaming-form-data targets.

The file part goes straight into a staged blob while it is hashed, counted and checked against
the size limit; memory stays constant whatever the size. Anything wrong with the body raises an
:class:`~affix.app.errors.DomainError` after the staged blob has been discarded.
"""
import dataclasses
import hashlib
import logging
import re
import typing
from email.message import Message

from gunicorn.http.errors import ParseException
from streaming_form_data import StreamingFormDataParser
from streaming_form_data.parser import ParseFailedException, UnexpectedPartException
from streaming_form_data.targets import BaseTarget

from affix.app.uploads import part_headers
from affix.app.errors import (
    MissingContentType, TypeNotSupported, invalid_request_body, property_violation,
    property_violations,
)
from affix.app.http.request_json import parse_json, storable_document
from affix.storage.write_behind import WriteBehind

log = logging.getLogger(__name__)
# streaming-form-data reads part headers with the email package, most of a small upload's CPU;
# where it is a version tested with it, it reads them with affix's part_headers instead
part_headers.install()

# Large reads keep the per-chunk overhead (parser calls, hashing calls) small: 64 KiB reads cost
# twice as much CPU per byte as 1 MiB reads on our machines.
READ_CHUNK_SIZE = 1024 * 1024
# reads shorter than this are gathered before parsing: per-call overhead, and answers that do
# not depend on how the bytes arrived
MIN_FEED_SIZE = 64 * 1024
# RFC 2046 allows bytes after the closing delimiter; nobody needs many
EPILOGUE_LIMIT = 64 * 1024
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
    """Streams the file part into a staged blob (which hashes it), counting on the way, and
    shows each chunk to ``inspect`` (the upload's inspectors)."""

    def __init__(self, staged_blob, max_attachment_size, inspect):
        super().__init__("file")
        self._staged_blob = staged_blob
        self._inspect = inspect
        self._max_attachment_size = max_attachment_size
        self.size = 0
        self.head = b""

    def on_data_received(self, chunk):
        self.size += len(chunk)
        if self.size > self._max_attachment_size:
            raise file_too_large(self._max_attachment_size)
        if len(self.head) < SNIFF_SIZE:
            self.head += chunk[: SNIFF_SIZE - len(self.head)]
        self._inspect(chunk)
        self._staged_blob.write(chunk)


@dataclasses.dataclass(frozen=True)
class RequestBody:
    """What an upload is read from: the body's stream and the headers that frame it."""

    stream: typing.BinaryIO
    content_type: str | None
    content_length: int | None

    @classmethod
    def of(cls, req) -> "RequestBody":
        return cls(req.stream, req.content_type, req.content_length)


@dataclasses.dataclass
class ReceivedUpload:
    """A completely received, well-formed upload whose bytes wait in ``staged_blob``."""

    file_name: str
    description: str
    size: int
    md5: str
    head: bytes
    staged_blob: object


# RFC 2046: 1 to 70 of these characters, the last not a space
_BOUNDARY = re.compile(r"[0-9A-Za-z'()+_,\-./:=? ]{0,69}[0-9A-Za-z'()+_,\-./:=?]")
# the Content-Type that browsers, curl, requests and httpx send, which the email package (a
# few percent of a small upload's CPU) reads as this expression does
_PLAIN_FORM_DATA = re.compile(r"multipart/form-data; boundary=([0-9A-Za-z_.-]{1,70})")


def multipart_boundary(content_type) -> bytes:
    """The boundary of a multipart/form-data Content-Type: 406 without a Content-Type, 415 for
    anything but multipart/form-data, 400 without a boundary RFC 2046 allows."""
    plain = _PLAIN_FORM_DATA.fullmatch(content_type) if content_type else None
    if plain:
        return plain.group(1).encode("ascii")
    return boundary_read_by_email_package(content_type)


def boundary_read_by_email_package(content_type) -> bytes:
    """:func:`multipart_boundary` for any Content-Type, read by the email package."""
    if not content_type:
        raise MissingContentType("Missing content-type header.")
    message = Message()
    message["Content-Type"] = content_type
    if message.get_content_type() != "multipart/form-data":
        raise TypeNotSupported(
            "Expected CONTENT-TYPE to be multipart/form-data but got "
            f"{message.get_content_type()}.",
        )
    boundary = message.get_boundary()
    if not boundary:
        raise invalid_request_body("The multipart/form-data Content-Type has no boundary.")
    if not _BOUNDARY.fullmatch(boundary):
        raise invalid_request_body("The multipart/form-data boundary is not valid.")
    return boundary.encode("ascii")


class _ClosingDelimiter:
    """Finds the end of the multipart body proper: the first closing delimiter.

    What follows it (an epilogue) is read but never given to the parser: streaming-form-data's
    reading of an epilogue depends on where the reads end, and the answer must not.
    """

    def __init__(self, boundary: bytes):
        self._delimiter = b"\r\n--" + boundary + b"--"
        self._carry = b""
        self.found = False

    def body_part_of(self, chunk: bytes) -> bytes:
        """The bytes of ``chunk`` up to the end of the closing delimiter; all of them before
        it was found, none after."""
        if self.found:
            return b""
        overlap = len(self._delimiter) - 1
        # a delimiter that straddles the previous chunk and this one, then one inside this one
        at = (self._carry + chunk[:overlap]).find(self._delimiter)
        if at >= 0:
            end: int | None = at - len(self._carry) + len(self._delimiter)
        else:
            at = chunk.find(self._delimiter)
            end = at + len(self._delimiter) if at >= 0 else None
        if end is None:
            self._carry = (self._carry + chunk[-overlap:])[-overlap:]
            return chunk
        self.found = True
        return chunk[:end]


def read_body_chunk(stream, size) -> bytes:
    """Up to ``size`` bytes of the body; 400 when the client's framing of it is broken (a
    malformed chunk: gunicorn's parse errors) or the client went away mid-body (``OSError``,
    gunicorn's ``NoMoreData`` among them). Either is the client's doing, logged as such, by
    the error's kind alone: gunicorn's messages quote the bytes they stumbled on, which are
    the body's."""
    try:
        return stream.read(size)
    except (OSError, ParseException) as error:
        log.info("the request body could not be read: %s", type(error).__name__)
        raise invalid_request_body("The request body could not be read: its framing is "
                                   "broken, or it ended early.") from None


def _body_chunks(body):
    """The request body in chunks of at least :data:`MIN_FEED_SIZE` bytes (but the last).

    Reads ``req.stream`` itself, never more than Content-Length says: Falcon's bounded stream
    counts the bytes asked for, not those a short read returned, and so stops early; and with
    no Content-Length (chunked) it reads nothing. Short reads, as a socket may give, are
    gathered up so that the parser sees the same chunks however the bytes arrived.
    """
    expected = body.content_length
    received = 0
    gathered = []
    gathered_size = 0
    while expected is None or received < expected:
        wanted = READ_CHUNK_SIZE if expected is None else min(READ_CHUNK_SIZE, expected - received)
        chunk = read_body_chunk(body.stream, wanted)
        if not chunk:
            break
        received += len(chunk)
        gathered.append(chunk)
        gathered_size += len(chunk)
        if gathered_size >= MIN_FEED_SIZE:
            yield gathered[0] if len(gathered) == 1 else b"".join(gathered)
            gathered.clear()
            gathered_size = 0
    if gathered:
        yield b"".join(gathered)
    if expected is not None and received < expected:
        raise invalid_request_body(
            f"The request body ended after {received} of {expected} bytes."
        )


def _feed(parser, body, closing):
    """Feed the body proper to ``parser``, and read (and bound) what follows it."""
    epilogue_size = 0
    for chunk in _body_chunks(body):
        body_part = closing.body_part_of(chunk)
        if body_part:
            parser.data_received(body_part)
        epilogue_size += len(chunk) - len(body_part)
        if epilogue_size > EPILOGUE_LIMIT:
            raise invalid_request_body(
                f"The request body goes on for more than {EPILOGUE_LIMIT} bytes after its "
                "closing boundary."
            )


def _parse_body(body, boundary, *targets):
    """Parse the body into ``targets`` (:class:`PartTarget`), one part each, and no other."""
    # the boundary, quoted, so that the parser (which reads the header its own way) finds
    # exactly the one checked above
    headers = {"Content-Type": f'multipart/form-data; boundary="{boundary.decode()}"'}
    parser = StreamingFormDataParser(headers=headers, strict=True)
    for target in targets:
        parser.register(target.name, target)
    closing = _ClosingDelimiter(boundary)
    try:
        _feed(parser, body, closing)
    except UnexpectedPartException as error:
        names = " and ".join(f"'{target.name}'" for target in targets)
        raise invalid_request_body(
            f"The part '{error.part_name}' is not expected: send exactly the "
            f"part{'s' if len(targets) > 1 else ''} {names}."
        ) from None
    except (ParseFailedException, UnicodeDecodeError):
        raise not_multipart() from None
    # streaming-form-data does not report a body cut short before the closing boundary: the
    # closing delimiter must have been seen, and a part that started but never finished is
    # caught below
    if not closing.found:
        if not any(target.started for target in targets):
            # nothing the parser could recognise, such as bare-LF line endings
            raise not_multipart()
        raise invalid_request_body("The request body ended before the closing boundary.")
    for target in targets:
        if not target.started:
            raise invalid_request_body(f"The request is missing the '{target.name}' part.")
    if not all(target.finished for target in targets):
        raise invalid_request_body("The request body ended before the closing boundary.")


def receive_metadata(body: RequestBody) -> bytes:
    """The metadata part of a body that has only that part (a direct upload's preparation);
    400 when the body is anything else."""
    metadata = MetadataTarget()
    _parse_body(body, multipart_boundary(body.content_type), metadata)
    return metadata.value


def parse_metadata(raw: bytes):
    """The file name and description of a metadata part; 400 or 422 when they are unusable."""
    document = storable_document(parse_json(raw))

    errors = []
    file_name = document.get("fileName")
    if not isinstance(file_name, str) or not file_name.strip():
        errors.append(property_violation("fileName", "File name can't be blank."))
    description = description_of(document, errors)
    if errors:
        raise property_violations(errors)
    return file_name, description


def description_of(document, errors) -> str:
    """The description of a metadata document (a string, or ``{"raw": …}``); what is wrong
    with it is appended to ``errors``."""
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
    return description


def receive_upload(body: RequestBody, blob_store, max_attachment_size,
                   inspect) -> ReceivedUpload:
    """Read the request's ``body`` into a staged blob and check it whole; ``inspect`` is
    given every chunk of the file part (:meth:`affix.app.uploads.inspection.Inspection.feed`).

    On any failure the staged blob is discarded before the error propagates; on success the
    caller owns the staged blob and must commit or discard it.
    """
    boundary = multipart_boundary(body.content_type)
    # md5 and the writes on threads of their own: both release the GIL, and the next chunk is
    # read meanwhile
    staged_blob = WriteBehind(blob_store.stage(), direct_size=READ_CHUNK_SIZE,
                              digest=hashlib.md5())
    try:
        metadata = MetadataTarget()
        blob = BlobTarget(staged_blob, max_attachment_size, inspect)
        _parse_body(body, boundary, metadata, blob)
        file_name, description = parse_metadata(metadata.value)
        md5 = staged_blob.hexdigest()
    except BaseException:
        staged_blob.discard()
        raise
    return ReceivedUpload(
        file_name=file_name, description=description, size=blob.size, md5=md5,
        head=blob.head, staged_blob=staged_blob,
    )
