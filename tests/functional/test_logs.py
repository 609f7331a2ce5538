"""The log, in process: the request id from X-Request-Id or made up and echoed, the log
settings, and a trace kept below its text line. (A real server's log, text or one JSON object a
line, an access line per request with its facts, and never a key, an Authorization header or a
byte of a file, whatever the request: system/test_logs_served.py.)"""
import logging
import re
import sys

import pytest

from affix.app.http.logs import TEXT_DATE_FORMAT, TEXT_FORMAT, TRACE_INDENT, TextLines
from affix.app.settings import Settings, SettingsError

GENERATED_ID = re.compile(r"[0-9a-f]{32}")


# --- request ids, in process ---------------------------------------------------------------------

@pytest.mark.parametrize("sent", [
    "0f8fad5b-d9cb-469f-a165-70867728950e", "a" * 128, "Root=1-67891233-abcdef012345678912",
    "ab+/cd==", "x",
])
def test_a_usable_request_id_is_taken_and_echoed(client, sent):
    response = client.simulate_get("/health", headers={"X-Request-Id": sent})

    assert response.headers["x-request-id"] == sent


@pytest.mark.parametrize("sent", [
    "", "a" * 129, "two words", "<script>", "quote\"d", "ключ", "a\tb", "semi;colon",
])
def test_an_unusable_request_id_is_replaced_by_our_own(client, sent):
    response = client.simulate_get("/health", headers={"X-Request-Id": sent})

    assert GENERATED_ID.fullmatch(response.headers["x-request-id"])


def test_without_a_request_id_each_request_gets_its_own(client):
    ids = {client.simulate_get("/health").headers["x-request-id"] for _ in range(5)}

    assert len(ids) == 5
    assert all(GENERATED_ID.fullmatch(each) for each in ids)


def test_an_error_answer_carries_the_request_id_too(client):
    response = client.simulate_get("/api/v3/attachments/1", headers={"X-Request-Id": "r-1"})

    assert (response.status_code, response.headers["x-request-id"]) == (401, "r-1")


@pytest.mark.parametrize("variable, raw, problem", [
    ("AFFIX_LOG_FORMAT", "yaml", "AFFIX_LOG_FORMAT must be one of text, json, not 'yaml'"),
    ("AFFIX_ACCESS_LOG", "maybe", "AFFIX_ACCESS_LOG must be 1 or 0 (true or false), not 'maybe'"),
])
def test_unusable_log_settings_are_refused(variable, raw, problem):
    with pytest.raises(SettingsError) as refused:
        Settings.from_environ({variable: raw})
    assert str(refused.value) == problem


def test_logs_are_text_with_access_lines_unless_asked_otherwise():
    settings = Settings.from_environ({})
    assert (settings.log_format, settings.access_log) == ("text", True)
    settings = Settings.from_environ({"AFFIX_LOG_FORMAT": "JSON", "AFFIX_ACCESS_LOG": "0"})
    assert (settings.log_format, settings.access_log) == ("json", False)


# --- a trace in a text line ----------------------------------------------------------------------

def test_a_trace_in_text_is_indented_and_escaped_below_its_one_line():
    formatter = TextLines(TEXT_FORMAT, TEXT_DATE_FORMAT)
    record = logging.LogRecord("affix", logging.ERROR, __file__, 1, "failed in %s", (
        "GET /api/v3/projects/x\n[CRITICAL] forged\x1b[2K\u2028",), None)
    try:
        raise ValueError("bad name\r\n[CRITICAL] forged\x85")
    except ValueError:
        record.exc_info = sys.exc_info()

    first, *trace = formatter.format(record).split("\n")

    assert first.endswith(
        "[ERROR] failed in GET /api/v3/projects/x\\n[CRITICAL] forged\\x1b[2K\\u2028")
    assert trace[0] == TRACE_INDENT + "Traceback (most recent call last):"
    assert trace[-2:] == [TRACE_INDENT + "ValueError: bad name\\r",
                          TRACE_INDENT + "[CRITICAL] forged\\x85"]
    assert all(line.startswith(TRACE_INDENT) for line in trace)
