"""``affix upload --parallel`` against a real server that advertises tus's concatenation: a
large file goes up as partial uploads at once, joined by a final upload into one attachment;
killed in the middle, the same command goes on with each partial upload where it stopped.
(The client's other ways: test_upload_client.py.)"""
import json
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from support.content import MiB, md5, random_bytes
from support.processes import COMMAND_TIMEOUT, REPO_ROOT, environ_without_affix
from support.relays import Gate
from support.servers import HIGH_LIMIT, running_server
from support.tus import concat_states, offset_of
from support.waiting import wait_for

pytestmark = [pytest.mark.system, pytest.mark.one_database("the client is the point")]

# three partial uploads of 8 MiB (the least a part has) and a byte
CONTENT = random_bytes(24 * MiB + 1, seed=31)
CHUNK = 1024 * 1024


@pytest.fixture
def tus_server(tmp_path, databases):
    with running_server(tmp_path, databases, HIGH_LIMIT,
                        {"AFFIX_TUS_MAX_SIZE": str(HIGH_LIMIT)}) as server:
        yield server


@pytest.fixture
def client_environ(tmp_path, tus_server):
    home = tmp_path / "home"
    return environ_without_affix(
        HOME=str(home), XDG_CONFIG_HOME=str(home / "config"),
        XDG_STATE_HOME=str(home / "state"), AFFIX_API_KEY=tus_server.api_key)


def client_command(*argv):
    return [sys.executable, "-m", "affix.app.cli.commands", "upload", *argv]


def resume_entries(environ) -> list:
    """The uploads the client's resume state remembers."""
    path = Path(environ["XDG_STATE_HOME"], "affix", "uploads.json")
    return list(json.loads(path.read_text()).get("uploads", {}).values()) if path.exists() else []


def leases_held(server) -> bool:
    """Whether a request still writes one of the server's uploads."""
    catalog = server.stored.catalog
    with catalog.database.connection_context():
        return bool(catalog.database.execute_sql(
            'SELECT COUNT(*) FROM "resumable_uploads" WHERE "lease_token" IS NOT NULL'
        ).fetchone()[0])


def assert_one_attachment(server, url):
    [(attachment_id, name, size, digest, _)] = server.stored.rows()
    assert url.endswith(f"/api/v3/attachments/{attachment_id}")
    assert (name, size, digest) == ("big.bin", len(CONTENT), md5(CONTENT))
    *partials, final = concat_states(server.stored.catalog)
    assert [row[1:] for row in partials] == [("partial", final[0], False)] * 3
    assert [path for path in server.stored.files() if path.startswith(".tus/")] == []


def test_a_large_file_goes_up_as_partial_uploads_at_once(tmp_path, tus_server, client_environ):
    path = tmp_path / "big.bin"
    path.write_bytes(CONTENT)
    finished = subprocess.run(
        client_command(str(path), "--url", tus_server.url(""), "--parallel", "4", "--json"),
        cwd=REPO_ROOT, env=client_environ, capture_output=True, timeout=COMMAND_TIMEOUT)
    assert (finished.returncode, finished.stderr) == (0, b"")
    [result] = json.loads(finished.stdout)
    assert result["way"] == "tus-parallel"
    assert result["attachment"]["digest"]["hash"] == md5(CONTENT)
    assert_one_attachment(tus_server, result["url"])
    assert resume_entries(client_environ) == []


def test_a_killed_parallel_upload_goes_on_where_each_partial_upload_stopped(
        tmp_path, tus_server, client_environ):
    path = tmp_path / "big.bin"
    path.write_bytes(CONTENT)
    # about half the file through, then nothing
    gate = Gate(tus_server.port, hold_after=12 * MiB)
    argv = client_command(str(path), "--url", gate.url, "--parallel", "3",
                          "--chunk-size", str(CHUNK))
    try:
        process = subprocess.Popen(argv, cwd=REPO_ROOT, env=client_environ,
                                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_for(gate.holding.is_set, "the client in the middle of the file")
        process.send_signal(signal.SIGKILL)
        process.wait(timeout=COMMAND_TIMEOUT)
        gate.release()
        [entry] = resume_entries(client_environ)
        assert entry["bounds"] == [[0, 8 * MiB + 1], [8 * MiB + 1, 16 * MiB + 2],
                                   [16 * MiB + 2, 24 * MiB + 1]]
        urls = [url.replace(gate.url, tus_server.url("")) for url in entry["partials"]]
        wait_for(lambda: not leases_held(tus_server), "the server done with the cut chunks")
        kept = sum(offset_of(url, tus_server.auth) for url in urls)
        assert 4 * MiB <= kept <= 12 * MiB
        assert tus_server.stored.rows() == []

        resumed = subprocess.run(argv, cwd=REPO_ROOT, env=client_environ, capture_output=True,
                                 timeout=COMMAND_TIMEOUT)
        sent_again = gate.forwarded
    finally:
        gate.close()
    assert (resumed.returncode, resumed.stderr) == (0, b"")
    assert_one_attachment(tus_server, resumed.stdout.decode().strip())
    # what the server held went not again: the rest, and the requests' headers
    assert len(CONTENT) - kept <= sent_again < len(CONTENT) - kept + 64 * 1024
    assert resume_entries(client_environ) == []
