"""affix's reader of part headers answers exactly what the email package answers, line by
line and for whole bodies parsed by streaming-form-data, on hypothesis-generated input: quoting,
RFC 2231 ``filename*``, odd spacing, case, duplicates, non-ASCII, malformed lines."""
import email.parser
import email.policy
import importlib.metadata
import tomllib
import types

import pytest
from hypothesis import HealthCheck, given, settings, strategies as st
from streaming_form_data import StreamingFormDataParser
from streaming_form_data import _parser as compiled_parser
from streaming_form_data import parser as parser_module
from streaming_form_data.parser import ParseFailedException, UnexpectedPartException
from streaming_form_data.targets import BaseTarget

from affix.app.uploads import deferred_imports, part_headers
from support.processes import REPO_ROOT

# the same examples on every run and in CI, and no example database
LINES = settings(max_examples=2000, derandomize=True, deadline=None, database=None,
                 suppress_health_check=list(HealthCheck))
BODIES = settings(LINES, max_examples=300)

header_names = st.sampled_from([
    "Content-Disposition", "content-disposition", "CONTENT-DISPOSITION", "Content-Type",
    "content-type", "X-Other", "Content-Length", "Con tent", "Content-Disposition ", "",
    "Content-Transfer-Encoding"])
parameter_names = st.sampled_from(["name", "filename", "NAME", "Filename", "filename*",
                                   "other", "name*0", "name*"])
any_text = st.text(alphabet=st.characters(min_codepoint=0, max_codepoint=0x2ff), max_size=12)
tokens = st.text(alphabet="abcxyzABC019.-_!#$%&'*+^`|~=?\"\\ ", min_size=1, max_size=8)
quoted = st.one_of(any_text, tokens).map(lambda text: f'"{text}"')
values = st.one_of(tokens, quoted, any_text,
                   st.sampled_from(["UTF-8''caf%C3%A9.png", "=?utf-8?q?caf=C3=A9?=", "a\\\"b"]))
separators = st.sampled_from([";", "; ", " ;", ";  ", ";\t", "", ",", "; ;"])
dispositions = st.sampled_from(["form-data", "FORM-DATA", "Form-Data", "attachment", "inline",
                                "form-data ", "", "form_data"])
content_types = st.sampled_from(["application/json", "APPLICATION/JSON", "text/plain",
                                 "garbage", "a/b/c", "image/png ", "multipart/form-data",
                                 "text/*"])


@st.composite
def header_lines(draw):
    if draw(st.booleans()):
        value = draw(dispositions) + "".join(
            draw(separators) + draw(parameter_names) + "=" + draw(values)
            for _ in range(draw(st.integers(0, 3))))
    else:
        value = draw(content_types) + "".join(
            draw(separators) + draw(tokens) + "=" + draw(values)
            for _ in range(draw(st.integers(0, 2))))
    spacing = draw(st.sampled_from([" ", "", "  ", "\t"]))
    return f"{draw(header_names)}:{spacing}{value}{draw(st.sampled_from(['', ' ']))}\r\n"


def answers(message):
    """What streaming-form-data asks of a header line's message."""
    disposition = "content-disposition" in message
    content_type = "content-type" in message
    params = message["content-disposition"].params if disposition else {}
    return (disposition, message.get_content_disposition() if disposition else None,
            params.get("name"), params.get("filename"),
            content_type, message.get_content_type() if content_type else None)


def email_message(line):
    return email.parser.Parser(policy=email.policy.HTTP).parsestr(line)


@LINES
@given(header_lines())
def test_every_line_read_fast_is_read_as_the_email_package_reads_it(line):
    fast = part_headers.read_header_line(line)
    if fast is not None:
        assert answers(fast) == answers(email_message(line))


@pytest.mark.parametrize("line", [
    'Content-Disposition: form-data; name="metadata"\r\n',
    'Content-Disposition: form-data; name="file"; filename="cat.png"\r\n',
    "content-disposition: form-data; name=file; filename=a.txt\r\n",
    "Content-Type: application/json\r\n",
    "Content-Type: application/octet-stream\r\n",
    "Content-Type: text/plain; charset=utf-8\r\n",
    "X-Request-Part: 1\r\n",
])
def test_the_lines_clients_send_are_read_fast(line):
    fast = part_headers.read_header_line(line)

    assert fast is not None
    assert answers(fast) == answers(email_message(line))


@pytest.mark.parametrize("line", [
    "Content-Disposition: form-data; name=\"f\"; filename*=UTF-8''caf%C3%A9.png\r\n",
    'Content-Disposition: form-data; name="a\\"b"\r\n',
    'Content-Disposition: form-data; name="café"\r\n',
    'Content-Disposition: form-data; name="x"; name="y"\r\n',
    'Content-Disposition: attachment; name="x"\r\n',
    " folded continuation\r\n",
])
def test_what_the_email_package_reads_its_own_way_is_left_to_it(line):
    assert part_headers.read_header_line(line) is None


# --- whole bodies through streaming-form-data, with and without the fast reader ------------------

class Recorder(BaseTarget):
    def __init__(self):
        super().__init__()
        self.events = []

    def on_start(self):
        self.events.append(("start", self.multipart_filename))

    def on_data_received(self, chunk):
        self.events.append(("data", chunk, self.multipart_content_type))

    def on_finish(self):
        self.events.append(("finish", self.multipart_filename, self.multipart_content_type))


BOUNDARY = "b0undary"


@st.composite
def bodies(draw):
    parts = []
    for number in range(draw(st.integers(1, 3))):
        lines = draw(st.lists(header_lines(), min_size=0, max_size=3))
        if draw(st.booleans()):
            name = draw(st.sampled_from(["metadata", "file", "other", ""]))
            lines.insert(0, f'Content-Disposition: form-data; name="{name}"; '
                            f'filename="part{number}.bin"\r\n')
        content = draw(st.binary(max_size=40))
        parts.append(f"--{BOUNDARY}\r\n".encode() + "".join(lines).encode("utf-8")
                     + b"\r\n" + content + b"\r\n")
    return b"".join(parts) + f"--{BOUNDARY}--\r\n".encode()


def parse(body, strict):
    """What streaming-form-data's targets saw of ``body``, and how the parse ended."""
    parser = StreamingFormDataParser(
        headers={"Content-Type": f"multipart/form-data; boundary={BOUNDARY}"}, strict=strict)
    targets = {name: Recorder() for name in ("metadata", "file")}
    for name, target in targets.items():
        parser.register(name, target)
    try:
        parser.data_received(body)
        ending = None
    except UnexpectedPartException as error:
        ending = ("unexpected part", error.part_name)
    except (ParseFailedException, UnicodeDecodeError) as error:
        ending = (type(error).__name__, str(error))
    return {name: target.events for name, target in targets.items()}, ending


@BODIES
@given(bodies(), st.booleans())
def test_a_body_parses_the_same_with_and_without_the_fast_reader(monkeypatch, body, strict):
    with monkeypatch.context() as stock:
        stock.setattr(compiled_parser, "Parser", email.parser.Parser)
        expected = parse(body, strict)
    assert compiled_parser.Parser is part_headers.PartHeaderParser
    assert parse(body, strict) == expected


def test_it_is_installed_on_the_version_it_was_tested_with():
    assert part_headers.install()
    assert compiled_parser.Parser is part_headers.PartHeaderParser
    assert parser_module.parse_content_boundary is part_headers.parse_content_boundary


def test_pyproject_allows_only_a_version_the_patches_were_tested_with():
    # any other would switch them off, and with them the speed docs/performance.md measures
    dependencies = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())["project"][
        "dependencies"]
    pinned = [dependency for dependency in dependencies
              if dependency.startswith("streaming-form-data")]
    assert pinned == [f"streaming-form-data=={version}"
                      for version in deferred_imports.TESTED_VERSIONS]
    assert part_headers.TESTED_VERSIONS is deferred_imports.TESTED_VERSIONS


def test_both_patches_are_on_for_the_installed_version():
    assert importlib.metadata.version("streaming-form-data") in part_headers.TESTED_VERSIONS
    assert compiled_parser.Parser is part_headers.PartHeaderParser
    assert deferred_imports.defer_unused_imports({}) is True


def stock_parser_modules() -> tuple[types.ModuleType, types.ModuleType]:
    """Stand-ins for streaming-form-data's two parser modules as its release has them, before
    affix patches them: what the patches look at, and no more."""
    compiled = types.ModuleType("compiled parser")
    compiled.Parser, compiled.HTTP = email.parser.Parser, email.policy.HTTP
    python = types.ModuleType("python parser")
    python.parse_content_boundary = part_headers._STOCK_PARSE_CONTENT_BOUNDARY
    return compiled, python


def test_it_stays_out_of_a_version_it_was_not_tested_with():
    compiled, python = stock_parser_modules()
    stock = python.parse_content_boundary

    assert part_headers.install(tested_versions=("0.0.1",), compiled=compiled,
                                python=python) is False
    assert compiled.Parser is email.parser.Parser
    assert python.parse_content_boundary is stock
    # only the version kept it out
    installed = (importlib.metadata.version("streaming-form-data"),)
    assert part_headers.install(tested_versions=installed, compiled=compiled, python=python)
    assert compiled.Parser is part_headers.PartHeaderParser
    assert python.parse_content_boundary is part_headers.parse_content_boundary


# --- the request's Content-Type ------------------------------------------------------------

boundary_characters = "azAZ09'()+_,-./:=? \"\\é;"
content_type_values = st.one_of(
    st.builds("multipart/form-data; boundary=\"{}\"".format,
              st.text(alphabet=boundary_characters, max_size=75)),
    st.builds("{}; {}={}".format,
              st.sampled_from(["multipart/form-data", "MULTIPART/FORM-DATA", "multipart/mixed",
                               "text/plain", "multipart/form-data ", ""]),
              st.sampled_from(["boundary", "BOUNDARY", "boundary*", "charset"]),
              st.one_of(st.text(alphabet=boundary_characters, max_size=20), quoted, values)),
    any_text,
)
header_sets = st.one_of(
    st.builds(lambda name, value: {name: value},
              st.sampled_from(["Content-Type", "content-type", "CONTENT-TYPE", "Content-Length"]),
              content_type_values),
    st.dictionaries(st.sampled_from(["Content-Type", "content-type", "X-Other"]),
                    content_type_values, max_size=3),
)


def boundary_or_error(parse_content_boundary, headers):
    try:
        return parse_content_boundary(headers)
    except Exception as error:
        # beside its own refusals, the email package raises ValueError for a line break in a
        # header value and IndexError for some malformed ones: the same either way
        return (type(error).__name__, str(error))


@LINES
@given(header_sets)
def test_every_content_type_is_read_as_the_email_package_reads_it(headers):
    assert (boundary_or_error(part_headers.parse_content_boundary, headers)
            == boundary_or_error(part_headers._STOCK_PARSE_CONTENT_BOUNDARY, headers))


@pytest.mark.parametrize("boundary", ["affix-0123abcd", "a'b(c)+_,-./:?=z", "x" * 70])
def test_the_content_type_affix_gives_the_parser_is_read_fast(boundary):
    def stock_reading(headers):
        raise AssertionError(f"{headers} went to the email package")

    headers = {"Content-Type": f'multipart/form-data; boundary="{boundary}"'}
    assert part_headers.parse_content_boundary(
        headers, stock_reading=stock_reading) == boundary.encode()
