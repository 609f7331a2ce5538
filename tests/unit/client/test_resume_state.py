"""app.client.uploads.ResumeState: a state file that cannot be read as affix writes it (not
JSON, or JSON of another shape) costs a fresh upload, never a failed command; the next write
leaves a file of the right shape."""
import json

import pytest

from affix.app.client.uploads import ResumeState

COMMAND = json.dumps(["http://127.0.0.1:1", [], None, None])


@pytest.mark.parametrize("document", [
    "not JSON",
    "[]",
    '"a string"',
    '{"uploads": [], "commands": []}',
    json.dumps({"commands": {COMMAND: ["a.txt"]}}),
    json.dumps({"commands": {COMMAND: {"a.txt": "http://127.0.0.1:1/api/v3/attachments/1"}}}),
    json.dumps({"commands": {COMMAND: {"a.txt": {"url": 1, "way": "multipart"}}}}),
])
def test_a_state_of_another_shape_is_an_empty_one_and_is_written_anew(tmp_path, document):
    path = tmp_path / "uploads.json"
    path.write_text(document)
    state = ResumeState(path)

    assert (state.uploaded(COMMAND), state.upload_url("key")) == ({}, None)
    state.record_uploaded(COMMAND, "b.txt", "http://127.0.0.1:1/api/v3/attachments/2",
                          "multipart")
    assert state.uploaded(COMMAND) == {
        "b.txt": {"url": "http://127.0.0.1:1/api/v3/attachments/2", "way": "multipart"}}
    assert json.loads(path.read_text())["commands"] == {COMMAND: {
        "b.txt": {"url": "http://127.0.0.1:1/api/v3/attachments/2", "way": "multipart"}}}


def test_a_well_formed_entry_beside_a_broken_one_is_kept(tmp_path):
    path = tmp_path / "uploads.json"
    kept = {"url": "http://127.0.0.1:1/api/v3/attachments/1", "way": "tus"}
    path.write_text(json.dumps({"commands": {COMMAND: {"a.txt": kept, "b.txt": None}}}))

    assert ResumeState(path).uploaded(COMMAND) == {"a.txt": kept}
