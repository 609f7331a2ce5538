"""Property tests of the multipart upload path: hypothesis builds request bodies (part order,
duplicates, extra parts, odd part headers, odd boundaries, boundaries inside the data, truncation,
sizes around the limit, metadata variants) and sends them through falcon.testing, whole or in
reads of random sizes, with and without Content-Length.

Whatever arrives: never a 5xx, always ``application/hal+json``, a status the contract names; a
200 stores exactly one new row and one blob holding exactly the file part; anything else leaves
what is stored (rows, blobs, staging) exactly as it was.

One app per test function, shared by its examples: each example compares the snapshots before and
after its own request (hence the deliberately suppressed function-scoped-fixture health check),
and a 200's row and blob are removed again once checked.
"""
import hashlib
import itertools
import json
import string
from dataclasses import dataclass

import pytest
from hypothesis import HealthCheck, Phase, event, example, given, note, settings, strategies as st

from support.bodies import upload_body
from support.defaults import SMALL_LIMIT
from support.errors import URN

# Bounded and reproducible: the same examples in every run and on CI, no example database.
# No shrinking: with an HTTP request and two snapshots per example it took minutes; a failure
# is reported as found, which derandomize makes the same failure every run.
FUZZ = settings(
    max_examples=200, deadline=None, derandomize=True, database=None, print_blob=False,
    phases=[Phase.explicit, Phase.reuse, Phase.generate],
    suppress_health_check=[
        # deliberate: each example snapshots what is stored before and after its request
        HealthCheck.function_scoped_fixture,
        HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.large_base_example,
    ],
)

STATUSES = {200, 400, 406, 415, 422}
METADATA_LIMIT = 64 * 1024
DESCRIPTION_LIMIT = 255
# RFC 2046: bchars; a boundary must not end with a space
BCHARS = string.ascii_letters + string.digits + "'()+_,-./:=? "
# RFC 2045: characters that force a parameter value into a quoted-string
TSPECIALS = set('()<>@,;:\\"/[]?= ')
PATH = "/api/v3/attachments"


# --- sending -----------------------------------------------------------------------------------

class Reads:
    """A ``wsgi.input`` that hands out the body in reads of the given sizes, in turn, as a socket
    does. falcon.testing wraps the app in wsgiref's validator, which wants the whole file
    interface."""

    def __init__(self, body, sizes=()):
        self.body = body
        self.position = 0
        self.sizes = itertools.cycle(sizes or [max(len(body), 1)])

    def read(self, size=-1):
        remaining = len(self.body) - self.position
        if size is None or size < 0:
            size = remaining
        size = min(size, remaining, next(self.sizes))
        chunk = self.body[self.position:self.position + size]
        self.position += len(chunk)
        return chunk

    def readline(self, size=-1):
        end = self.body.find(b"\n", self.position)
        end = len(self.body) if end < 0 else end + 1
        if size is not None and size >= 0:
            end = min(end, self.position + size)
        chunk = self.body[self.position:end]
        self.position = end
        return chunk

    def readlines(self, hint=-1):
        return list(iter(self.readline, b""))

    def __iter__(self):
        return iter(self.readline, b"")


def send(client, people, body, content_type, content_length="exact", reads=()):
    """POST ``body``; ``content_length`` is "exact", None (no header) or a number to declare."""
    headers = dict(people.auth("ada"))
    if content_type is not None:
        headers["Content-Type"] = content_type
    if content_length == "exact":
        content_length = len(body)
    if content_length is not None:
        headers["Content-Length"] = str(content_length)
    return client.simulate_post(PATH, headers=headers, extras={"wsgi.input": Reads(body, reads)})


class Snapshots:
    """What is stored, around each example's request. A 200's new row and blob are removed
    again once checked, so that every example starts from the same store (one earlier upload)
    and a snapshot stays cheap however many examples ran."""

    def __init__(self, stored):
        self.stored = stored
        self._before = None

    def send(self, client, people, *args, **kwargs):
        """:func:`send`, with the snapshot before it taken."""
        self._before = self.stored.snapshot()
        return send(client, people, *args, **kwargs)

    def check(self, response):
        """The invariants of every answer; (stored bytes, document) for a 200, else None."""
        before = self._before
        assert response.status_code in STATUSES, (response.status_code, response.text)
        assert response.headers["content-type"] == "application/hal+json"
        document = response.json
        after = self.stored.snapshot()
        rows_before, files_before = before
        rows_after, files_after = after
        if response.status_code != 200:
            assert document["_type"] == "Error"
            assert document["errorIdentifier"].startswith(URN)
            assert isinstance(document["message"], str) and document["message"]
            assert after == before, "a refused upload changed what is stored"
            return None
        assert rows_after[:-1] == rows_before
        assert len(rows_after) == len(rows_before) + 1
        row_id, file_name, file_size, md5, key = rows_after[-1]
        self._forget(row_id, key)
        # one new file, the blob itself (nothing left in staging), every other file untouched
        assert set(files_after) == set(files_before) | {key}
        assert key not in files_before
        assert {path: files_after[path] for path in files_before} == files_before
        blob = files_after[key]
        assert hashlib.md5(blob).hexdigest() == md5 == document["digest"]["hash"]
        assert len(blob) == file_size == document["fileSize"] == document["filesize"]
        assert (document["id"], document["fileName"]) == (row_id, file_name)
        return blob, document

    def _forget(self, row_id, key):
        catalog = self.stored.catalog
        with catalog.database.connection_context():
            catalog.Attachment.delete_by_id(row_id)
        # the blob only: its fan-out folder belongs to the store
        (self.stored.blob_root / key).unlink(missing_ok=True)


@pytest.fixture
def snapshots(client, people, stored):
    """Made once per test function, shared by all its examples; one attachment is stored
    before the first of them, and must stay untouched."""
    response = send(client, people, *upload_body(b'{"fileName": "earlier.txt"}', b"keep me"))
    assert response.status_code == 200
    return Snapshots(stored)


# --- metadata ----------------------------------------------------------------------------------

@dataclass(frozen=True)
class Metadata:
    """A metadata part and what affix must make of it: ``status`` 200 (``file_name`` and
    ``description`` are then what is stored), 400, or 422 with ``errors`` [(attribute,
    message)] in the order affix reports them."""

    raw: bytes
    status: int
    file_name: str = None
    description: str = None
    errors: tuple = ()
    message: str = None


NOT_JSON = "The request could not be parsed as JSON."
NUL = "Text may not contain the NUL character (U+0000)."
BLANK_NAME = ("fileName", "File name can't be blank.")
LONG_DESCRIPTION = ("description", "Description is too long (maximum is 255 characters).")
NOT_TEXT = ("description", "Description must be a text.")

# no lone surrogates and no NUL: those are drawn on purpose below
TEXT = st.characters(exclude_categories=("Cs",), exclude_characters="\x00")
names = st.text(TEXT, min_size=1, max_size=40).filter(lambda name: name.strip())
# astral characters are one character each, two JSON escapes with ensure_ascii
descriptions = st.one_of(
    st.text(TEXT, max_size=DESCRIPTION_LIMIT),
    st.sampled_from(["x" * DESCRIPTION_LIMIT, "\U0001F600" * DESCRIPTION_LIMIT,
                     "<script>alert(1)</script>", "line\r\n\r\nnext"]),
)
long_descriptions = st.integers(DESCRIPTION_LIMIT + 1, 2000).map(lambda n: "d" * n) | st.just(
    "\U0001F600" * (DESCRIPTION_LIMIT + 1))
non_strings = st.sampled_from([42, 1.5, True, [], ["x"], {"raw": 5}, {"raw": ["x"]}])
non_objects = st.sampled_from([[], ["cat.png"], "cat.png", 42, None, True])
# how a description may be written: absent, null, a string, or a Formattable
description_shapes = st.sampled_from(["absent", "null", "string", "raw", "raw-null", "no-raw"])
extra_members = st.dictionaries(
    st.sampled_from(["contentType", "fileSize", "digest", "_links", "id"]),
    st.sampled_from(["image/png", 1, {"href": "/api/v3/attachments/1"}, None]), max_size=2)


def with_description(document, shape, description):
    if shape == "string":
        document["description"] = description
    elif shape == "raw":
        document["description"] = {"format": "plain", "raw": description}
    elif shape == "null":
        document["description"] = None
    elif shape == "raw-null":
        document["description"] = {"raw": None}
    elif shape == "no-raw":
        document["description"] = {"format": "plain"}
    return document


def encode_json(draw, document):
    text = json.dumps(document, ensure_ascii=draw(st.booleans()),
                      indent=draw(st.sampled_from([None, 2])))
    return text.encode("utf-8")


@st.composite
def valid_metadata(draw):
    name = draw(names)
    shape = draw(description_shapes)
    description = draw(descriptions) if shape in ("string", "raw") else ""
    document = {**draw(extra_members), "fileName": name}
    document = with_description(document, shape, description)
    return Metadata(encode_json(draw, document), 200, name, description)


@st.composite
def refused_metadata(draw):
    kind = draw(st.sampled_from([
        "not json", "not an object", "surrogate", "nul", "not utf-8", "too big", "name",
        "description", "both",
    ]))
    if kind == "not json":
        raw = draw(st.sampled_from([
            b"", b"{", b"{fileName: 'a'}", b"{'fileName': 'a'}", b'{"fileName": "a"',
            b'{"fileName": "a"}}', b"null null", b'{"fileName": "a",}',
        ]))
        return Metadata(raw, 400, message=NOT_JSON)
    if kind == "not an object":
        return Metadata(json.dumps(draw(non_objects)).encode(), 400, message=NOT_JSON)
    if kind == "surrogate":
        # JSON escapes of unpaired surrogates, in a value or a key
        escape = draw(st.sampled_from(["\\ud800", "\\udfff", "\\ud83d\\u0041", "\\ude00\\ud83d"]))
        raw = draw(st.sampled_from([
            '{"fileName": "a%s.txt"}', '{"fileName": "a.txt", "description": "%s"}',
            '{"fileName": "a.txt", "description": {"raw": "%s"}}',
            '{"%s": 1, "fileName": "a.txt"}',
        ])) % escape
        return Metadata(raw.encode(), 400, message=NOT_JSON)
    if kind == "nul":
        # PostgreSQL cannot store U+0000 in text, so no database gets it
        document = with_description({"fileName": draw(names)}, "raw", draw(descriptions))
        where = draw(st.sampled_from(["fileName", "description"]))
        if where == "fileName":
            document["fileName"] += "\x00"
        else:
            document["description"]["raw"] += "\x00"
        return Metadata(encode_json(draw, document), 400, message=NUL)
    if kind == "not utf-8":
        raw = draw(st.sampled_from([b'{"fileName": "\xff.txt"}', b'{"fileName": "\xc3("}',
                                    b'{"fileName": "a", "description": "\xed\xa0\x80"}']))
        return Metadata(raw, 400, message=NOT_JSON)
    if kind == "too big":
        padding = "p" * draw(st.integers(METADATA_LIMIT, METADATA_LIMIT + 100))
        raw = json.dumps({"fileName": "a.txt", "pad": padding}).encode()
        return Metadata(raw, 400,
                        message=f"The metadata part is larger than {METADATA_LIMIT} bytes.")
    errors = []
    document = draw(extra_members)
    if kind in ("name", "both"):
        name = draw(st.sampled_from(["absent", "", " ", "\t\r\n\u3000", 42, None, [], {}, True]))
        if name != "absent":
            document["fileName"] = name
        errors.append(BLANK_NAME)
    else:
        document["fileName"] = draw(names)
    if kind in ("description", "both"):
        if draw(st.booleans()):
            document = with_description(document, draw(st.sampled_from(["string", "raw"])),
                                        draw(long_descriptions))
            errors.append(LONG_DESCRIPTION)
        else:
            document["description"] = draw(non_strings)
            errors.append(NOT_TEXT)
    return Metadata(encode_json(draw, document), 422, errors=tuple(errors))


metadata_parts = st.one_of(valid_metadata(), refused_metadata())


def expected_error(metadata):
    """The exact HAL body affix answers to a refused metadata part."""
    if metadata.status == 400:
        return {"_type": "Error", "errorIdentifier": URN + "InvalidRequestBody",
                "message": metadata.message}
    errors = [
        {"_type": "Error", "errorIdentifier": URN + "PropertyConstraintViolation",
         "message": message, "_embedded": {"details": {"attribute": attribute}}}
        for attribute, message in metadata.errors
    ]
    if len(errors) == 1:
        return errors[0]
    return {"_type": "Error", "errorIdentifier": URN + "MultipleErrors",
            "message": "Multiple field constraints have been violated.",
            "_embedded": {"errors": errors}}


# --- boundaries, parts, bodies -----------------------------------------------------------------

boundaries = st.one_of(
    st.text(BCHARS, min_size=1, max_size=70).filter(lambda b: not b.endswith(" ")),
    st.sampled_from([
        "----WebKitFormBoundary7MA4YWxkTrZu0gW", "-" * 70, "a", "=_Part_0",
        "------------------------d74496d66958873e", "'()+_,-./:=?", " leading space",
    ]),
)


def content_type_of(boundary, quote=False, media="multipart/form-data", extra=""):
    """A correct Content-Type for ``boundary``: quoted when RFC 2045 says it must be."""
    value = f'"{boundary}"' if quote or TSPECIALS & set(boundary) else boundary
    return f"{media};{extra} boundary={value}"


def quoted_content_type(boundary):
    """The Content-Type for the tests of bodies: an apostrophe in a boundary quoted (unquoted, it
    is test_any_content_type_header's case)."""
    return content_type_of(boundary, quote="'" in boundary)


# (quote the boundary anyway, media type spelling, a parameter before the boundary)
correct_content_types = st.tuples(
    st.booleans(),
    st.sampled_from(["multipart/form-data", "Multipart/Form-Data", "MULTIPART/FORM-DATA"]),
    st.sampled_from(["", " charset=utf-8;"]),
)


@dataclass
class Part:
    """One body part, drawn for the form field ``name``; ``certain`` says that its headers name
    that field in a way every reader must understand (else they may name another, or none)."""

    name: str
    certain: bool
    headers: bytes
    data: bytes


EXTRA_HEADERS = st.lists(st.sampled_from([
    b"Content-Type: application/octet-stream", b"Content-Type: image/png",
    b"Content-Type: text/html; charset=utf-8", b"Content-Type: application/json",
    b"X-Anything: yes",
]), max_size=2, unique=True)
SAFE_FILE_NAMES = st.sampled_from(["upload.bin", "cat.png", "a b.txt", "../../evil", "C:\\x.txt"])


@st.composite
def certain_headers(draw, name):
    """Content-Disposition as RFC 7578 and RFC 2183 write it, in any of their spellings."""
    template = draw(st.sampled_from([
        'Content-Disposition: form-data; name="{}"',
        'content-disposition: form-data; name="{}"',
        'CONTENT-DISPOSITION: FORM-DATA; NAME="{}"',
        'Content-Disposition: form-data;name="{}"',
        'Content-Disposition: form-data; name={}',
    ]))
    line = template.format(name)
    if draw(st.booleans()):
        file_name = draw(SAFE_FILE_NAMES).replace("\\", "\\\\")
        line += f'; filename="{file_name}"'
    lines = draw(EXTRA_HEADERS)
    lines.insert(draw(st.integers(0, len(lines))), line.encode())
    return b"".join(line + b"\r\n" for line in lines)


@st.composite
def odd_headers(draw, name):
    """Part headers that no two readers need agree on."""
    quoted = name.encode()
    kind = draw(st.sampled_from([
        "no disposition", "single quotes", "escaped quote", "extended name", "two names",
        "not form-data", "odd file name", "long file name", "long header", "folded",
        "no colon", "nul", "bare LF", "non-UTF-8 value", "empty name", "spaces around =",
        "two dispositions", "transfer encoding", "part length", "other case",
    ]))
    disposition = b'Content-Disposition: form-data; name="' + quoted + b'"'
    lines = {
        "no disposition": draw(EXTRA_HEADERS),
        "single quotes": [b"Content-Disposition: form-data; name='" + quoted + b"'"],
        "escaped quote": [b'Content-Disposition: form-data; name="' + quoted + b'\\""'],
        "extended name": [b"Content-Disposition: form-data; name*=UTF-8''" + quoted],
        "two names": [disposition + b'; name="' + draw(st.sampled_from([b"file", b"metadata"]))
                      + b'"'],
        "not form-data": [b'Content-Disposition: attachment; name="' + quoted + b'"'],
        "odd file name": [disposition + b"; filename=" + draw(st.sampled_from([
            b'"a\\"b.txt"', b'"a\\\\b"', b'"a;b=c.txt"', b'"\xff\xfe.bin"', b'"\xc3\xa9.txt"',
            b'"a\x00b"', b"unquoted.txt", b'"unterminated', b'""', b"'single'",
        ]))],
        "long file name": [disposition + b'; filename="'
                           + b"f" * draw(st.integers(1000, 70000)) + b'"'],
        "long header": [disposition, b"X-Pad: " + b"p" * draw(st.integers(1000, 70000))],
        "folded": [b"Content-Disposition: form-data;\r\n name=\"" + quoted + b'"'],
        "no colon": [disposition, b"garbage without a colon"],
        "nul": [b'Content-Disposition: form-data; name="' + quoted + b'\x00"'],
        "bare LF": [disposition + b"\nX-Other: 1"],
        "non-UTF-8 value": [disposition, b"X-Latin: caf\xe9"],
        "empty name": [b'Content-Disposition: form-data; name=""'],
        "spaces around =": [b'Content-Disposition: form-data ; name = "' + quoted + b'"'],
        "two dispositions": [disposition, b'Content-Disposition: form-data; name="other"'],
        "transfer encoding": [disposition, b"Content-Transfer-Encoding: base64"],
        "part length": [disposition, b"Content-Length: 1"],
        "other case": [b'Content-Disposition: form-data; name="' + quoted.upper() + b'"'],
    }[kind]
    note(f"odd part headers: {kind}")
    return b"".join(line + b"\r\n" for line in lines)


@st.composite
def file_contents(draw, boundary, over_limit=True):
    """Bytes of a file part: small, empty, at the limit or (``over_limit``) just over it, with
    the boundary written inside them in ways that do not end the part."""
    size = draw(st.sampled_from(["small", "small", "small", "empty", "limit"]
                                + ["over"] * over_limit))
    data = draw(st.binary(max_size=300)) if size != "empty" else b""
    if size == "limit":
        data = data[:100] + b"\0" * (SMALL_LIMIT - min(len(data), 100))
    elif size == "over":
        data = data[:100] + b"\0" * (SMALL_LIMIT + draw(st.integers(1, 3000)) - min(len(data), 100))
    b = boundary.encode()
    for embedded in draw(st.lists(st.sampled_from([
        b"--" + b, b"--" + b + b"--", b"\n--" + b, b"\r--" + b, b"\r\n-" + b, b"\r\n--",
        b"\r\n--" + b[:-1], b"x--" + b + b"\r\n", b"\r\n\r\n",
    ]), max_size=3)):
        at = draw(st.integers(0, len(data)))
        data = data[:at] + embedded + data[at:]
    if size == "limit" and len(data) > SMALL_LIMIT:
        data = data[len(data) - SMALL_LIMIT:]
    return data


@dataclass
class Body:
    parts: list
    boundary: str
    bytes: bytes
    # where the closing delimiter ends: a body cut before it is incomplete
    closed_at: int
    # an odd body-level feature (preamble, epilogue, padding, bare LF), or None
    oddity: str
    # the boundary's delimiter stands inside a part: which part is the file is anybody's guess
    ambiguous: bool

    @property
    def certain(self):
        return self.oddity is None and not self.ambiguous and all(p.certain for p in self.parts)


def assemble(parts, boundary, oddity=None, preamble=b"", epilogue=b"", padding=b""):
    dash_boundary = b"--" + boundary.encode()
    body = preamble + b"\r\n" if preamble else b""
    for part in parts:
        body += dash_boundary + padding + b"\r\n" + part.headers + b"\r\n" + part.data + b"\r\n"
    body += dash_boundary + b"--"
    closed_at = len(body)
    body += b"\r\n" + epilogue
    delimiters = body.count(b"\r\n" + dash_boundary)
    ambiguous = delimiters != len(parts) + bool(preamble)
    if oddity == "bare LF":
        # the data's own CRLFs change too: no part is what was drawn any more
        body = body.replace(b"\r\n", b"\n")
        closed_at = body.rindex(dash_boundary + b"--") + len(dash_boundary) + 2
        ambiguous = True
    return Body(parts, boundary, body, closed_at, oddity, ambiguous)


@st.composite
def bodies(draw, odd=True):
    """A multipart body: usually the two parts in either order, sometimes any list of parts;
    with ``odd``, odd part headers and body-level oddities now and then."""
    boundary = draw(boundaries)
    # weighted toward bodies that may succeed, so that 200s are tried often enough too
    metadata = draw(st.one_of(valid_metadata(), valid_metadata(), refused_metadata()))
    names_in_order = draw(st.one_of(
        st.permutations(["metadata", "file"]), st.permutations(["metadata", "file"]),
        st.lists(st.sampled_from(["metadata", "file", "comment", "Metadata"]), max_size=5),
    ))
    parts = []
    odd_parts = odd and draw(st.sampled_from([False] * 4 + [True]))
    for name in names_in_order:
        if name == "file":
            data = draw(file_contents(boundary))
        elif name == "metadata":
            data = metadata.raw if not any(p.name == name for p in parts) else draw(
                metadata_parts).raw
        else:
            data = draw(st.binary(max_size=50))
        if odd_parts and draw(st.booleans()):
            parts.append(Part(name, False, draw(odd_headers(name)), data))
        else:
            # a name differing only in case is another field to RFC 7578, not to every reader
            parts.append(Part(name, name != "Metadata", draw(certain_headers(name)), data))
    oddity = draw(st.sampled_from(
        [None] * 16 + ["preamble", "epilogue", "padding", "bare LF"])) if odd else None
    body = assemble(
        parts, boundary, oddity,
        preamble=b"a preamble" if oddity == "preamble" else b"",
        epilogue=draw(st.binary(min_size=1, max_size=400)) if oddity == "epilogue" else b"",
        padding=b" \t " if oddity == "padding" else b"",
    )
    return body, metadata


def read_sizes(length):
    """Sizes of the reads a body of ``length`` bytes arrives in, taken in turn: down to single
    bytes for small bodies, at most about 256 reads for large ones (each read costs a trip
    through falcon and wsgiref's validator)."""
    smallest = max(1, length // 256)
    return st.lists(st.integers(smallest, max(4096, smallest)), min_size=1, max_size=20)


def assert_stored_file(answer, body):
    """A 200 stored the file part: exactly, when everybody agrees which part that is."""
    blob, document = answer
    if body.ambiguous:
        return
    candidates = [p.data for p in body.parts if p.name == "file" or not p.certain]
    assert blob in candidates
    if body.certain:
        (file_part,) = [p for p in body.parts if p.name == "file"]
        assert blob == file_part.data


def expected_status(body, metadata):
    """What affix answers to a complete body whose parts are all certain: the first problem in
    stream order (a foreign or repeated part, a part over its limit), then a missing part, then
    the metadata."""
    seen = set()
    for part in body.parts:
        if part.name not in ("metadata", "file") or part.name in seen:
            return 400
        seen.add(part.name)
        if part.name == "metadata" and len(part.data) > METADATA_LIMIT:
            return 400
        if part.name == "file" and len(part.data) > SMALL_LIMIT:
            return 422
    if seen != {"metadata", "file"}:
        return 400
    return metadata.status


# --- the properties ----------------------------------------------------------------------------

@FUZZ
@given(data=st.data())
def test_any_multipart_body(client, people, snapshots, data):
    """Part order, duplicates, extra and missing parts, odd part headers and boundaries, the
    boundary inside the data, preambles, epilogues, bare LFs, cuts at any byte, Content-Length
    right, missing, short or long, whole reads or (without Content-Length) random ones."""
    body, metadata = data.draw(bodies())
    quote, media, extra = data.draw(correct_content_types)
    # an apostrophe in an unquoted boundary is test_any_content_type_header's case: kept out of
    # here, so that this test looks at bodies
    content_type = content_type_of(body.boundary, quote or "'" in body.boundary, media, extra)
    sent = body.bytes
    if data.draw(st.sampled_from([False] * 3 + [True]), label="cut?"):
        sent = sent[:data.draw(st.integers(0, len(sent)), label="cut")]
    length = data.draw(st.sampled_from(["exact", "exact", None, "short", "long"]), label="length")
    reads = ()
    if length == "short":
        length = data.draw(st.integers(0, max(len(sent) - 1, 0)))
    elif length == "long":
        length = len(sent) + data.draw(st.integers(1, 100))
    elif length is None:
        reads = data.draw(read_sizes(len(sent)))
    # what the app gets to read: a Content-Length shorter than the body hides the rest of it
    readable = min(len(sent), length) if isinstance(length, int) else len(sent)
    note(f"Content-Type: {content_type!r}, body of {len(body.bytes)} bytes, {len(sent)} sent, "
         f"Content-Length {length!r}, reads {reads}")

    response = snapshots.send(client, people, sent, content_type, length, reads)
    answer = snapshots.check(response)
    event(f"{response.status_code} {response.json.get('message', '')[:40]}")
    event(f"body: {'certain' if body.certain else 'ambiguous' if body.ambiguous else 'odd'}"
          f"{', cut' if len(sent) < len(body.bytes) else ''}")

    declared_too_long = isinstance(length, int) and length > len(sent)
    if (readable < body.closed_at or declared_too_long) and not body.ambiguous:
        assert response.status_code != 200, "an incomplete body was accepted"
    if answer is not None:
        assert_stored_file(answer, body)
    complete = readable == len(body.bytes) and not declared_too_long
    if body.certain and complete:
        assert response.status_code == expected_status(body, metadata), response.json
        if response.status_code == 200:
            assert answer[1]["fileName"] == metadata.file_name
            assert answer[1]["description"]["raw"] == metadata.description


def two_parts(metadata_raw, file_data, file_first=False):
    parts = [Part("metadata", True, b'Content-Disposition: form-data; name="metadata"\r\n',
                  metadata_raw),
             Part("file", True, b'Content-Disposition: form-data; name="file"; '
                  b'filename="upload.bin"\r\n', file_data)]
    return parts[::-1] if file_first else parts


@FUZZ
@given(metadata=metadata_parts, file_data=st.binary(max_size=200), file_first=st.booleans())
def test_any_metadata(client, people, snapshots, metadata, file_data, file_first):
    """Valid metadata (any file name, a description as a string or a Formattable, extra
    members) is stored as sent; invalid JSON, non-objects, lone surrogates, non-UTF-8, oversize
    metadata, missing, blank or non-string file names, long or non-text descriptions get their
    exact error."""
    body = assemble(two_parts(metadata.raw, file_data, file_first), "metadata-boundary")
    response = snapshots.send(client, people, body.bytes, content_type_of(body.boundary))
    answer = snapshots.check(response)
    if metadata.status == 200:
        assert response.status_code == 200, response.json
        blob, document = answer
        assert blob == file_data
        assert document["fileName"] == metadata.file_name
        assert document["description"]["raw"] == metadata.description
    else:
        assert (response.status_code, response.json) == (
            metadata.status, expected_error(metadata))


@st.composite
def content_type_headers(draw, boundary):
    """(header, whether it is a correct multipart/form-data Content-Type for ``boundary``)."""
    quoted = f'"{boundary}"'
    encoded = "".join(f"%{byte:02X}" for byte in boundary.encode())
    correct = [
        content_type_of(boundary),
        content_type_of(boundary, quote=True),
        f"multipart/form-data; boundary*=UTF-8''{encoded}",
        f"multipart/form-data; charset=utf-8; boundary={quoted}; foo=bar",
        f"multipart/form-data;boundary={quoted}",
    ]
    odd = [
        f"multipart/form-data; boundary={boundary}",
        f"multipart/form-data; boundary={quoted[:-1]}",
        f"multipart/form-data; boundary=={boundary}",
        f"multipart/form-data; boundary*0={quoted}",
        f"multipart/form-data; boundary*1={quoted}",
        f"multipart/form-data; boundary={quoted}; boundary=other",
        f"multipart/form-data; boundary=other; boundary={quoted}",
        f"multipart/form-data; boundary={quoted} (a comment)",
        f"multipart/form-data (a comment); boundary={quoted}",
        "multipart/form-data; boundary=", "multipart/form-data; boundary",
        'multipart/form-data; boundary=""', "multipart/form-data; boundary*=''",
        "multipart/form-data", f"multipart/mixed; boundary={quoted}",
        f"text/plain; boundary={quoted}", "application/json", "", "multipart/", "/", ";;;",
        f"multipart/form-data; {boundary}",
    ]
    garbage = st.text(st.characters(min_codepoint=0x20, max_codepoint=0xFF), max_size=80)
    return draw(st.one_of(
        st.sampled_from(correct).map(lambda header: (header, True)),
        st.sampled_from(odd).map(lambda header: (header, header == content_type_of(boundary))),
        st.builds(lambda a, b: (a + quoted + b, False), garbage, garbage),
        st.builds(lambda a: (f"multipart/form-data; boundary={quoted}{a}", False), garbage),
    ))


@st.composite
def content_type_cases(draw):
    """(boundary, file bytes, body, Content-Type header, whether the header is correct)."""
    boundary = draw(boundaries)
    file_data = draw(st.binary(max_size=200))
    body = assemble(two_parts(draw(valid_metadata()).raw, file_data), boundary)
    header, correct = draw(content_type_headers(boundary))
    return boundary, file_data, body, header, correct


def content_type_case(boundary, header):
    """An explicit example: a known upload under ``header``, which is correct."""
    body = assemble(two_parts(b'{"fileName": "a.txt"}', b"x"), boundary)
    return boundary, b"x", body, header, True


@pytest.mark.one_database("the multipart parser's: refused before anything is stored")
@FUZZ
@given(case=content_type_cases())
# RFC 2045 token characters, unquoted: correct headers
@example(case=content_type_case("a'b", "multipart/form-data; boundary=a'b"))
@example(case=content_type_case("'", "multipart/form-data; boundary='"))
def test_any_content_type_header(client, people, snapshots, case):
    """The Content-Type header in any shape, correct (token or quoted boundary, an RFC 2231
    parameter, extra parameters) or not (special characters unquoted, duplicated or broken
    parameters, other media types, garbage), in front of a well-formed body."""
    boundary, file_data, body, header, correct = case
    note(f"Content-Type: {header!r}")
    response = snapshots.send(client, people, body.bytes, header or None)
    answer = snapshots.check(response)
    if answer is not None and not body.ambiguous:
        assert answer[0] == file_data
    if correct and not body.ambiguous:
        assert response.status_code == 200, response.json
    if not header:
        assert response.status_code == 406


@st.composite
def well_formed_bodies(draw, epilogue=False):
    """A correct upload: both parts in either order, valid metadata, a file within the limit;
    with ``epilogue``, bytes after the closing delimiter as RFC 2046 allows."""
    boundary = draw(boundaries)
    metadata = draw(valid_metadata())
    file_data = draw(file_contents(boundary, over_limit=False))
    parts = [Part("metadata", True, draw(certain_headers("metadata")), metadata.raw),
             Part("file", True, draw(certain_headers("file")), file_data)]
    if draw(st.booleans()):
        parts.reverse()
    body = assemble(parts, boundary,
                    epilogue=draw(st.binary(min_size=1, max_size=300)) if epilogue else b"")
    return body, file_data


@pytest.mark.one_database("the multipart parser's: refused before anything is stored")
@FUZZ
@given(data=st.data())
def test_short_reads_with_content_length(client, people, snapshots, data):
    """A wsgi.input may return fewer bytes than asked for, as a socket does: a correct upload
    with its correct Content-Length is stored whatever the sizes of the reads."""
    body, file_data = data.draw(well_formed_bodies())
    reads = data.draw(read_sizes(len(body.bytes)))
    response = snapshots.send(
        client, people, body.bytes, quoted_content_type(body.boundary), "exact", reads)
    answer = snapshots.check(response)
    if not body.ambiguous:
        assert response.status_code == 200, (reads, response.json)
        assert answer[0] == file_data


@st.composite
def read_size_cases(draw):
    """(body, read sizes): a correct upload, with an epilogue now and then."""
    body, _ = draw(well_formed_bodies(epilogue=draw(st.booleans())))
    return body, draw(read_sizes(len(body.bytes)))


def _epilogue_case():
    # the closing delimiter and the epilogue in one read, or in two
    body = assemble(two_parts(b'{"fileName": "a.txt"}', b"x"), "b", epilogue=b"epilogue")
    return body, [body.closed_at + 2, 1 << 20]


def _leading_dash_case():
    # a read that ends with the file part's headers, then one holding only its first byte, "-"
    body = assemble(two_parts(b'{"fileName": "a.txt"}', b"-x"), "b")
    start = body.bytes.index(b"\r\n\r\n-x") + 4
    return body, [start, 1, 1 << 20]


@pytest.mark.one_database("the multipart parser's: refused before anything is stored")
@FUZZ
@pytest.mark.long
@given(case=read_size_cases())
@example(case=_epilogue_case())
@example(case=_leading_dash_case())
def test_the_answer_does_not_depend_on_read_sizes(client, people, snapshots, case):
    """The same body without Content-Length (as a chunked request arrives), read once whole and
    once in reads of random sizes, gets the same answer; with an epilogue too."""
    body, reads = case
    content_type = quoted_content_type(body.boundary)
    answers = []
    for sizes in ((), reads):
        response = snapshots.send(client, people, body.bytes, content_type, None, sizes)
        answer = snapshots.check(response)
        answers.append((response.status_code, response.json.get("message"),
                        answer and answer[0]))
    whole, split = answers
    # a delimiter inside a part (right after its headers, say) makes the body malformed, and
    # streaming-form-data's reading of it depends on where the reads end: either answer is safe
    if not body.ambiguous:
        assert split == whole, f"read whole: {whole[:2]}; in reads of {reads}: {split[:2]}"


@pytest.mark.one_database("the multipart parser's: refused before anything is stored")
@FUZZ
@given(data=st.data())
def test_a_body_cut_anywhere_is_refused(client, people, snapshots, data):
    """A correct upload cut at any byte before the end of its closing delimiter is refused and
    leaves nothing: sent with its full length declared (the client went away), with its cut
    length, or without Content-Length in random reads. Cut just after the closing delimiter, it
    is whole."""
    body, file_data = data.draw(well_formed_bodies())
    cut = data.draw(st.integers(0, len(body.bytes)), label="cut")
    declared = data.draw(st.sampled_from(["full", "exact", None]), label="Content-Length")
    length = len(body.bytes) if declared == "full" else declared
    reads = data.draw(read_sizes(cut)) if declared is None else ()
    response = snapshots.send(
        client, people, body.bytes[:cut], quoted_content_type(body.boundary), length, reads)
    answer = snapshots.check(response)
    if body.ambiguous:
        pass
    elif declared == "full" and cut < len(body.bytes):
        assert (response.status_code, response.json["message"]) == (
            400, f"The request body ended after {cut} of {len(body.bytes)} bytes.")
    elif cut < body.closed_at:
        assert response.status_code == 400, response.json
    elif cut in (body.closed_at, len(body.bytes)):
        assert response.status_code == 200, response.json
        assert answer[0] == file_data
