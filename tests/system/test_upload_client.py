"""``affix upload`` against real servers: the plain multipart upload where nothing better is
offered, direct upload to S3 (moto), into a work package, with the key from the environment or
the config file or none, the server's error messages, ``--json``, a progress bar on a terminal
and none in a pipe, and Ctrl-C."""
import fcntl
import io
import json
import os
import pty
import re
import runpy
import signal
import struct
import subprocess
import sys
import termios
from pathlib import Path

import pytest
import requests

from affix.app.cli.commands import main
from affix.app.client import uploads as client_uploads
from affix.app.client.direct_parts import URL_BATCH
from affix.app.client.uploads import (
    FIXES, NO_TLS, OTHER_REFUSAL, OTHER_WAY, UNTRUSTED_CERTIFICATE, ResumeState,
)
from support.cli import affix
from support.content import MiB, md5, png_bytes, random_bytes
from support.errors import WRONG_CREDENTIALS
from support.net import HOST, REQUEST_TIMEOUT, free_port
from support.nginx import nginx_in_front
from support.processes import COMMAND_TIMEOUT, REPO_ROOT, environ_without_affix
from support.relays import CorruptingRelay, CountingRelay, Gate
from support.s3 import s3_environ
from support.servers import HIGH_LIMIT, running_server
from support.state import STORAGE_KEY
from support.waiting import wait_for

pytestmark = [pytest.mark.system, pytest.mark.one_database(
    "the client's behaviour: the server's storing is tested on both elsewhere")]

# tus off, where a server would offer it: what these tests check is the way after it
NO_TUS = {"AFFIX_TUS_MAX_SIZE": "0"}
CONTENT = random_bytes(300 * 1024, seed=16)


def serving(tmp_path, databases, limit=HIGH_LIMIT, environ=NO_TUS):
    """A real server with its data in ``tmp_path / "server"``."""
    (tmp_path / "server").mkdir()
    return running_server(tmp_path / "server", databases, limit, environ)


@pytest.fixture
def plain_server(tmp_path, databases):
    """A server with local storage (no direct uploads) and no tus."""
    with serving(tmp_path, databases) as server:
        yield server


@pytest.fixture
def files(tmp_path):
    """Writes files into a folder of their own; the paths, in the order given."""
    folder = tmp_path / "files"
    folder.mkdir()

    def write(**contents):
        for name, content in contents.items():
            (folder / name).write_bytes(content)
        return [str(folder / name) for name in contents]
    return write


@pytest.fixture
def home(tmp_path):
    """The client's home: its config and state folders, and no key anywhere yet."""
    folder = tmp_path / "home"
    folder.mkdir()
    return folder


def client_environ(home, key=None) -> dict:
    environ = {"HOME": str(home), "XDG_CONFIG_HOME": str(home / "config"),
               "XDG_STATE_HOME": str(home / "state")}
    if key is not None:
        environ["AFFIX_API_KEY"] = key
    return environ


def resume_state(home) -> dict:
    path = home / "state" / "affix" / "uploads.json"
    return json.loads(path.read_text()) if path.exists() else None


def remembered(root, paths, urls, way, work_package=None, description=None) -> dict:
    """The state file once the command uploading ``paths`` to ``root`` as ``urls`` finished:
    no upload to resume, and the attachments the command made, for when it runs again."""
    command = ResumeState.command_key(root, [Path(each) for each in paths],
                                      work_package, description)
    return {"commands": {command: {path: {"url": url, "way": way}
                                   for path, url in zip(paths, urls)}}}


def refused_in_the_end(done, total, listed=()) -> str:
    """The last line after the server refused every file not uploaded, for good; ``total``
    as it is written ("1 file", "3 files")."""
    files = f" ({', '.join(listed)})" if listed else ""
    return (f"affix: uploaded {done} of {total}{files}; the server refused the rest, and "
            "the same command would meet the same refusal: fix what is said above first\n")


def upload(capsys, environ, *argv):
    """``affix upload ARGV`` in this process: (exit status, stdout, stderr)."""
    out = io.StringIO()
    status = main(["upload", *argv], environ=environ, out=out)
    return status, out.getvalue(), capsys.readouterr().err


def new_work_package(server, databases, tmp_path) -> int:
    """The id of a new work package in a new project "demo" of the server ``serving`` made."""
    environ = databases.environ(tmp_path / "server" / "data")
    assert affix(environ, "project", "add", "demo")[0] == 0
    created = requests.post(server.url("/api/v3/work_packages"), headers=server.auth,
                            timeout=REQUEST_TIMEOUT, json={
                                "subject": "Roof",
                                "_links": {"project": {"href": "/api/v3/projects/demo"}}})
    assert created.status_code == 201, created.text
    return created.json()["id"]


def fetched(server, url) -> dict:
    response = requests.get(url, headers=server.auth, timeout=REQUEST_TIMEOUT)
    assert response.status_code == 200, response.text
    return response.json()


def unsigned(value):
    """``value`` (JSON) with every pre-signed URL's query (its date and signature) cut off."""
    if isinstance(value, list):
        return [unsigned(item) for item in value]
    if isinstance(value, dict):
        return {key: unsigned(item) for key, item in value.items()}
    if isinstance(value, str) and "X-Amz-Signature=" in value:
        return value.partition("?")[0]
    return value


def test_a_file_goes_up_as_a_plain_multipart_upload(capsys, plain_server, files, home):
    [path] = files(**{"notes.bin": CONTENT})
    status, out, err = upload(capsys, client_environ(home, plain_server.api_key),
                              path, "--url", plain_server.url("/"))
    assert (status, err) == (0, "")
    [(attachment_id, name, size, digest, _)] = plain_server.stored.rows()
    assert out == plain_server.url(f"/api/v3/attachments/{attachment_id}") + "\n"
    assert (name, size, digest) == ("notes.bin", len(CONTENT), md5(CONTENT))
    # nothing to go on with; the attachment the command made
    assert resume_state(home) == remembered(plain_server.url(""), [path], [out.strip()],
                                            "multipart")


def test_a_finished_command_run_again_reports_its_attachment_and_again_uploads_anew(
        capsys, plain_server, files, home):
    paths = files(**{"a.bin": CONTENT, "b.txt": b"hello\n"})
    environ = client_environ(home, plain_server.api_key)
    first = upload(capsys, environ, *paths, "--url", plain_server.url(""))
    rows = plain_server.stored.rows()
    assert first[0::2] == (0, "")
    # the same command again: the same attachments, nothing uploaded, and why
    status, out, err = upload(capsys, environ, *paths, "--url", plain_server.url("/api/v3"))
    assert (status, out) == (0, first[1])
    assert err == ("affix: this command ran to the end before: these are the attachments it "
                   "made (--again uploads the files anew)\n")
    assert plain_server.stored.rows() == rows
    # --again: two new attachments, and the command remembers those
    status, out, err = upload(capsys, environ, *paths, "--url", plain_server.url(""), "--again")
    assert (status, err) == (0, "")
    anew = plain_server.stored.rows()[2:]
    urls = [plain_server.url(f"/api/v3/attachments/{row[0]}") for row in anew]
    assert [row[1] for row in anew] == ["a.bin", "b.txt"]
    assert out.splitlines() == urls
    assert resume_state(home) == remembered(plain_server.url(""), paths, urls, "multipart")


def test_json_lists_every_file_with_its_attachment(capsys, plain_server, files, home):
    paths = files(**{"a.bin": CONTENT, "b.txt": b"hello\n"})
    status, out, err = upload(capsys, client_environ(home, plain_server.api_key), *paths,
                              "--url", plain_server.url("/api/v3"), "--json",
                              "--description", "Two files")
    assert (status, err) == (0, "")
    [(first, *_), (second, *_)] = plain_server.stored.rows()
    urls = [plain_server.url(f"/api/v3/attachments/{each}") for each in (first, second)]
    assert json.loads(out) == [
        {"file": path, "url": url, "way": "multipart", "attachment": fetched(plain_server, url)}
        for path, url in zip(paths, urls)]
    assert [fetched(plain_server, url)["description"]["raw"] for url in urls] == [
        "Two files", "Two files"]


def test_the_key_comes_from_the_config_file(capsys, plain_server, files, home):
    [path] = files(**{"a.bin": CONTENT})
    config = home / "config" / "affix" / "client.toml"
    config.parent.mkdir(parents=True)
    root = plain_server.url("")
    config.write_text(f'api_key = "not-this-one"\n\n[servers."{root}"]\n'
                      f'api_key = "{plain_server.api_key}"\n')
    status, out, err = upload(capsys, client_environ(home), path, "--url", root + "/")
    assert (status, err) == (0, "")
    assert len(plain_server.stored.rows()) == 1
    # the top-level key serves every other server: here, a wrong one
    config.write_text(f'api_key = "{plain_server.api_key}x"\n')
    status, out, err = upload(capsys, client_environ(home), path, "--url", root, "--again")
    assert (status, out) == (1, "")
    assert err == (f"affix: error: {path}: {WRONG_CREDENTIALS}\n"
                   f"  the server refused the key: check api_key in {config} (the top level)\n"
                   + refused_in_the_end(0, "1 file"))
    assert len(plain_server.stored.rows()) == 1


def test_a_refused_key_names_where_it_came_from(capsys, plain_server, files, home):
    paths = files(**{"a.bin": CONTENT, "b.txt": b"hello\n"})
    status, out, err = upload(capsys, client_environ(home, plain_server.api_key + "x"), *paths,
                              "--url", plain_server.url(""))
    assert (status, out) == (1, "")
    assert err == "".join(f"affix: error: {path}: {WRONG_CREDENTIALS}\n"
                          "  the server refused the key: check AFFIX_API_KEY\n"
                          for path in paths) + refused_in_the_end(0, "2 files")
    assert plain_server.stored.rows() == []


def test_without_a_key_nothing_is_sent(capsys, files, home):
    [path] = files(**{"a.bin": CONTENT})
    # a port nobody listens on: the command must stop before it connects
    status, out, err = upload(capsys, client_environ(home), path, "--url", "http://127.0.0.1:9")
    assert (status, out) == (1, "")
    config = home / "config" / "affix" / "client.toml"
    assert err == ("affix: error: no API key for http://127.0.0.1:9: set AFFIX_API_KEY, or "
                   f"api_key in {config}\n")


def test_an_unreadable_config_file_or_a_wrong_url_is_one_line(capsys, files, home):
    [path] = files(**{"a.bin": CONTENT})
    config = home / "config" / "affix" / "client.toml"
    config.parent.mkdir(parents=True)
    config.write_text('api_key = "unclosed\n')
    status, out, err = upload(capsys, client_environ(home), path, "--url", "http://127.0.0.1:9")
    assert (status, out) == (1, "")
    # the rest of the line is tomllib's own account of the fault
    assert err.startswith(f"affix: error: cannot read {config}: ")
    assert err.count("\n") == 1 and err.endswith("\n")
    status, out, err = upload(capsys, client_environ(home, "key"), path, "--url", "example.com")
    assert (status, out) == (2, "")
    assert err == ("affix: error: --url is http://host/... or https://host/..., not "
                   "'example.com'\n")
    status, out, err = upload(capsys, client_environ(home, "key"), str(home / "nope.bin"),
                              "--url", "http://127.0.0.1:9")
    assert (status, out, err) == (2, "", f"affix: error: not a readable file: {home}/nope.bin\n")


def test_what_stops_tls_is_named_and_running_again_is_not_offered(
        capsys, files, home, monkeypatch):
    """As a newcomer met it: the nginx recipe's self-signed certificate, not yet trusted, and
    https:// for a port that speaks plain HTTP (the recipe's redirecting one). Neither gets as
    far as nginx's upstream, so none runs."""
    for variable in ("REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE"):
        monkeypatch.delenv(variable, raising=False)
    [path] = files(**{"a.bin": CONTENT})
    redirect_port = free_port()
    with nginx_in_front(home / "nginx", free_port(), tls=True,
                        redirect_port=redirect_port) as base_url:
        untrusted = upload(capsys, client_environ(home, "key"), path, "--url", base_url)
        plain = upload(capsys, client_environ(home, "key"), path,
                       "--url", f"https://{HOST}:{redirect_port}")

    refused = ("affix: uploaded 0 of 1 file; the server refused the rest, and the same command "
               "would meet the same refusal: fix what is said above first\n")
    assert untrusted == (1, "", (
        f"affix: error: {path}: {base_url} sent a certificate this client does not trust: "
        f"self-signed certificate\n  {UNTRUSTED_CERTIFICATE}\n{refused}"))
    assert plain == (1, "", (
        f"affix: error: {path}: no TLS connection to https://{HOST}:{redirect_port}: "
        f"WRONG_VERSION_NUMBER\n  {NO_TLS}\n{refused}"))


def test_the_command_to_run_again_writes_the_chunk_size_as_a_person_would(
        capsys, files, home):
    [path] = files(**{"a.bin": CONTENT})
    status, out, err = upload(capsys, client_environ(home, "key"), path,
                              "--url", "http://127.0.0.1:9", "--chunk-size", "8MiB")
    assert (status, out) == (1, "")
    assert err == (
        f"affix: error: {path}: no answer from http://127.0.0.1:9 (ConnectionError)\n"
        "affix: uploaded 0 of 1 file; to go on, run the same command again:\n"
        f"  affix upload {path} --url http://127.0.0.1:9 --chunk-size 8M\n")


def test_a_chunk_size_that_is_none_is_a_usage_error(capsys, files, home):
    [path] = files(**{"a.bin": CONTENT})
    with pytest.raises(SystemExit) as stopped:
        upload(capsys, client_environ(home, "key"), path, "--url", "http://127.0.0.1:9",
               "--chunk-size", "8X")
    assert stopped.value.code == 2
    assert capsys.readouterr().err == (
        "affix upload: error: argument --chunk-size: not a size: '8X'; write bytes (5242880), "
        "or K, M, G with or without iB (5M, 5MiB: 1024-based)\n")


@pytest.mark.parametrize("argv, line", [
    (["--parallel", "0"], "argument --parallel: must be a whole number of 1 or more, not '0'"),
    (["--parallel", "x"], "argument --parallel: must be a whole number of 1 or more, not 'x'"),
    (["--parallel", " 3"], "argument --parallel: must be a whole number of 1 or more, not ' 3'"),
    (["--parallel", "65"], "argument --parallel: must be at most 64, not '65'"),
    (["--way", "fast"], "argument --way: invalid choice: 'fast' (choose from 'auto', "
                        "'direct-parts', 'direct', 'tus', 'multipart')"),
])
def test_a_way_or_parallel_that_is_none_is_a_usage_error(capsys, files, home, argv, line):
    [path] = files(**{"a.bin": CONTENT})
    with pytest.raises(SystemExit) as stopped:
        upload(capsys, client_environ(home, "key"), path, "--url", "http://127.0.0.1:9", *argv)
    assert stopped.value.code == 2
    assert capsys.readouterr().err == f"affix upload: error: {line}\n"


@pytest.mark.parametrize("way, message", [
    ("direct-parts", "the server takes no direct uploads in parts (--way direct-parts)"),
    ("direct", "the server takes no direct uploads (--way direct)"),
    ("tus", "the server offers no tus uploads (--way tus)"),
])
def test_a_forced_way_the_server_lacks_says_so_and_stores_nothing(capsys, plain_server, files,
                                                                  home, way, message):
    [path] = files(**{"a.bin": CONTENT})
    status, out, err = upload(capsys, client_environ(home, plain_server.api_key), path,
                              "--url", plain_server.url(""), "--way", way)
    assert (status, out) == (1, "")
    assert err == (f"affix: error: {path}: {message}\n  {OTHER_WAY}\n"
                   + refused_in_the_end(0, "1 file"))
    assert plain_server.stored.rows() == []
    assert plain_server.stored.files() == {}
    assert list(plain_server.staging.iterdir()) == []


def test_a_refused_file_says_why_and_the_others_go_up(capsys, tmp_path, databases, files, home):
    limit = 200 * 1024
    paths = files(**{"small.txt": b"small\n", "big.bin": CONTENT, "last.txt": b"last\n"})
    with serving(tmp_path, databases, limit) as server:
        status, out, err = upload(capsys, client_environ(home, server.api_key), *paths,
                                  "--url", server.url(""))
        rows = server.stored.rows()
        # the same command again: the refused file is tried again, the others not
        again = upload(capsys, client_environ(home, server.api_key), *paths,
                       "--url", server.url(""))
        assert server.stored.rows() == rows
        # an attachment deleted since is uploaded anew
        deleted = requests.delete(out.splitlines()[0], headers=server.auth,
                                  timeout=REQUEST_TIMEOUT)
        assert deleted.status_code == 204
        assert upload(capsys, client_environ(home, server.api_key), *paths,
                      "--url", server.url(""))[0] == 1
        anew = server.stored.rows()
    assert [row[1] for row in anew] == ["last.txt", "small.txt"]
    assert status == 1
    assert [(name, size) for _, name, size, _, _ in rows] == [("small.txt", 6), ("last.txt", 5)]
    assert out.splitlines() == [server.url(f"/api/v3/attachments/{row[0]}") for row in rows]
    assert err == (
        f"affix: error: {paths[1]}: File is too large (maximum size is {limit} Bytes).\n"
        f"  {OTHER_REFUSAL}\n" + refused_in_the_end(2, "3 files", [paths[0], paths[2]]))
    assert again == (status, out, err)


def test_a_file_that_went_away_during_the_command_is_reported_and_the_others_go_up(
        plain_server, files, home):
    paths = files(**{"first.bin": CONTENT, "gone.txt": b"gone\n", "last.txt": b"last\n"})
    # the first file in the middle of its upload
    gate = Gate(plain_server.port, hold_after=len(CONTENT) // 2)
    try:
        environ = environ_without_affix(**client_environ(home, plain_server.api_key))
        process = subprocess.Popen(client_command(*paths, "--url", gate.url), cwd=REPO_ROOT,
                                   env=environ, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        wait_for(gate.holding.is_set, "the client in the middle of the first file")
        os.unlink(paths[1])
        gate.release(cut=False)
        out, err = process.communicate(timeout=COMMAND_TIMEOUT)
    finally:
        gate.close()
    rows = plain_server.stored.rows()
    assert process.returncode == 1
    assert [row[1] for row in rows] == ["first.bin", "last.txt"]
    assert out.decode().splitlines() == [f"{gate.url}/api/v3/attachments/{row[0]}" for row in rows]
    assert err.decode() == (
        f"affix: error: {paths[1]}: the file could not be read: No such file or directory\n"
        f"affix: uploaded 2 of 3 files ({paths[0]}, {paths[2]}); to go on, run the same command "
        f"again:\n  affix upload {' '.join(paths)} --url {gate.url}\n")


@pytest.mark.parametrize("way, stopped_in", [
    # Ctrl-C while the client reads the file again for its md5, after the server's answer
    ("multipart", "check_digest"), ("tus", "check_digest"),
    # or while it records the attachment: the tus upload, not forgotten yet, names it again
    ("tus", "record_uploaded"),
])
def test_a_run_stopped_once_the_server_made_the_attachment_is_reported_not_repeated(
        capsys, tmp_path, databases, files, home, monkeypatch, way, stopped_in):
    [path] = files(**{"notes.bin": CONTENT})
    with serving(tmp_path, databases, environ=TUS if way == "tus" else NO_TUS) as server:
        environ = client_environ(home, server.api_key)
        with monkeypatch.context() as stopped:
            if stopped_in == "check_digest":
                stopped.setattr(client_uploads, "check_digest", interrupt)
            else:
                stopped.setattr(client_uploads.ResumeState, "record_uploaded", interrupt)
            first = upload(capsys, environ, path, "--url", server.url(""), "--way", way)
        again = upload(capsys, environ, path, "--url", server.url(""), "--way", way)
        rows = server.stored.rows()
    [(attachment_id, *_)] = rows
    url = server.url(f"/api/v3/attachments/{attachment_id}")
    assert first[:2] == (130, "")
    # recorded: reported as the command's; not recorded yet: the upload found again
    assert again == (0, url + "\n", "" if stopped_in == "record_uploaded" else (
        "affix: this command ran to the end before: these are the attachments it made "
        "(--again uploads the files anew)\n"))
    assert resume_state(home) == remembered(server.url(""), [path], [url], way)


def test_a_file_goes_into_a_work_package(capsys, plain_server, files, home, databases, tmp_path):
    work_package = new_work_package(plain_server, databases, tmp_path)
    [path] = files(**{"plan.txt": b"roof plan\n"})
    status, out, err = upload(capsys, client_environ(home, plain_server.api_key), path,
                              "--url", plain_server.url(""), "--work-package", str(work_package))
    assert (status, err) == (0, "")
    attachment = fetched(plain_server, out.strip())
    assert attachment["_links"]["container"]["href"] == f"/api/v3/work_packages/{work_package}"
    # a work package that is not there: the server's message, and nothing stored
    status, out, err = upload(capsys, client_environ(home, plain_server.api_key), path,
                              "--url", plain_server.url(""), "--work-package", "999")
    assert (status, out) == (1, "")
    assert err == (f"affix: error: {path}: The requested resource could not be found.\n"
                   f"  {FIXES[404]}\n" + refused_in_the_end(0, "1 file"))
    assert len(plain_server.stored.rows()) == 1


def test_a_user_without_the_permission_is_told_so(capsys, plain_server, files, home,
                                                  databases, tmp_path):
    work_package = new_work_package(plain_server, databases, tmp_path)
    environ = databases.environ(tmp_path / "server" / "data")
    for argv in (["user", "add", "vic"], ["role", "add", "viewer", "view_work_packages"],
                 ["member", "add", "vic", "demo", "viewer"]):
        assert affix(environ, *argv)[0] == 0
    status, key = affix(environ, "apikey", "create", "vic")
    assert status == 0
    [path] = files(**{"plan.txt": b"roof plan\n"})
    status, out, err = upload(capsys, client_environ(home, key.strip()), path,
                              "--url", plain_server.url(""), "--work-package", str(work_package))
    assert (status, out) == (1, "")
    assert err.startswith(f"affix: error: {path}: ")
    assert err.endswith(f"\n  {FIXES[403]}\n" + refused_in_the_end(0, "1 file"))
    assert plain_server.stored.rows() == []


def test_files_go_straight_to_s3_when_the_server_offers_it(capsys, tmp_path, databases,
                                                           s3_bucket, files, home):
    environ = {**NO_TUS, **s3_environ(s3_bucket.endpoint_url),
               "AFFIX_STORAGE_URL": s3_bucket.url("blobs")}
    [path] = files(**{"video.bin": CONTENT})
    with serving(tmp_path, databases, environ=environ) as server:
        work_package = new_work_package(server, databases, tmp_path)
        status, out, err = upload(capsys, client_environ(home, server.api_key), path,
                                  "--url", server.url(""), "--json")
        assert (status, err) == (0, "")
        # --way direct: OpenProject's one form instead of parts
        status, into, err = upload(capsys, client_environ(home, server.api_key), path,
                                   "--url", server.url(""), "--work-package", str(work_package),
                                   "--way", "direct")
        assert (status, err) == (0, "")
        rows = server.stored.rows()
        urls = [server.url(f"/api/v3/attachments/{row[0]}") for row in rows]
        # the pre-signed download URL is signed anew, with the second's time, on each request
        assert "X-Amz-Signature=" in json.loads(out)[0]["attachment"]["_links"][
            "downloadLocation"]["href"]
        assert unsigned(json.loads(out)) == [{"file": path, "url": urls[0], "way": "direct-parts",
                                              "attachment": unsigned(fetched(server, urls[0]))}]
        assert into == urls[1] + "\n"
        assert fetched(server, urls[1])["_links"]["container"]["href"] == (
            f"/api/v3/work_packages/{work_package}")
    assert [row[1:4] for row in rows] == [("video.bin", len(CONTENT), md5(CONTENT))] * 2
    # the copies completion made, and no staged object left
    assert s3_bucket.objects() == {f"blobs/{row[4]}": CONTENT for row in rows}
    assert all(STORAGE_KEY.fullmatch(row[4]) for row in rows)


def test_bytes_damaged_on_the_way_are_reported(capsys, plain_server, files, home):
    [path] = files(**{"damaged.bin": CONTENT})
    relay = CorruptingRelay(plain_server.port, at=len(CONTENT) // 2)
    try:
        status, out, err = upload(capsys, client_environ(home, plain_server.api_key), path,
                                  "--url", relay.url)
    finally:
        relay.close()
    [(attachment_id, _, size, digest, _)] = plain_server.stored.rows()
    assert (status, out, size) == (1, "", len(CONTENT))
    assert digest != md5(CONTENT)
    assert err == (
        f"affix: error: {path}: the server stored other bytes than the file holds (md5 "
        f"{digest}, the file's {md5(CONTENT)}): {relay.url}/api/v3/attachments/{attachment_id}\n"
        "affix: uploaded 0 of 1 file; to go on, run the same command again:\n"
        f"  affix upload {path} --url {relay.url}\n")
    # the damaged attachment is not the command's: the next run uploads the file anew
    assert resume_state(home) == {}


# --- the client as a user runs it: a terminal, a pipe, Ctrl-C ----------------------------------

def interrupt(*args):
    raise KeyboardInterrupt


def client_command(*argv):
    return [sys.executable, "-m", "affix.app.cli.commands", "upload", *argv]


def run_on_terminal(argv, environ) -> tuple:
    """(exit status, everything written to the terminal) of the client run on a pseudo-terminal
    of 24 rows and 100 columns, as stdout and stderr."""
    leader, follower = pty.openpty()
    fcntl.ioctl(follower, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 100, 0, 0))
    process = subprocess.Popen(argv, cwd=REPO_ROOT, env=environ, stdin=subprocess.DEVNULL,
                               stdout=follower, stderr=follower)
    os.close(follower)
    written = b""
    while True:
        try:
            data = os.read(leader, 65536)
        except OSError:
            # EIO: the client has exited and closed its end
            break
        if not data:
            break
        written += data
    os.close(leader)
    return process.wait(timeout=COMMAND_TIMEOUT), written.decode()


def test_a_terminal_gets_a_progress_bar_and_a_pipe_none(plain_server, files, home):
    [path] = files(**{"movie.bin": CONTENT})
    environ = environ_without_affix(**client_environ(home, plain_server.api_key))
    status, written = run_on_terminal(client_command(path, "--url", plain_server.url("")),
                                      environ)
    assert status == 0, written
    [(first, *_)] = plain_server.stored.rows()
    # tqdm's line, drawn over itself with \r: the name, the share done, the bar, the bytes,
    # the time spent and left, the rate
    final = written.split("\r\n")[0].split("\r")[-1].rstrip()
    # sizes and rate alike in powers of 1024
    assert re.fullmatch(r"movie\.bin: 100%\|[^|]+\| 300\.0KiB/300\.0KiB "
                        r"\[\d\d:\d\d<\d\d:\d\d, ([\d.]+[KMG]iB|\d+B)/s\]", final), written
    assert written.endswith(plain_server.url(f"/api/v3/attachments/{first}") + "\r\n")

    piped = subprocess.run(client_command(path, "--url", plain_server.url(""), "--again"),
                           cwd=REPO_ROOT, env=environ, capture_output=True,
                           timeout=COMMAND_TIMEOUT)
    [_, (second, *_)] = plain_server.stored.rows()
    assert (piped.returncode, piped.stderr) == (0, b"")
    assert piped.stdout == (plain_server.url(f"/api/v3/attachments/{second}") + "\n").encode()


def test_ctrl_c_stops_an_upload_and_the_same_command_goes_on(plain_server, files, home):
    paths = files(**{"first.txt": b"first\n", "big.bin": random_bytes(4 * MiB, seed=3),
                     "last.txt": b"last\n"})
    # the first file through, then half of the second
    gate = Gate(plain_server.port, hold_after=2 * MiB)
    try:
        environ = environ_without_affix(**client_environ(home, plain_server.api_key))
        process = subprocess.Popen(client_command(*paths, "--url", gate.url), cwd=REPO_ROOT,
                                   env=environ, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        wait_for(gate.holding.is_set, "the client in the middle of the second file")
        process.send_signal(signal.SIGINT)
        out, err = process.communicate(timeout=COMMAND_TIMEOUT)
        [(first, name, *_)] = plain_server.stored.rows()
        assert process.returncode == 130
        assert out.decode() == f"{gate.url}/api/v3/attachments/{first}\n"
        assert err.decode() == (
            f"affix: interrupted; uploaded 1 of 3 files ({paths[0]}); to go on, run the same "
            "command again:\n"
            f"  affix upload {' '.join(paths)} --url {gate.url}\n")
        # a multipart upload cut short leaves nothing behind
        gate.release()
        wait_for(lambda: plain_server.staged_blobs() == [], "the cut upload's staged blob gone")

        again = subprocess.run(client_command(*paths, "--url", gate.url), cwd=REPO_ROOT,
                               env=environ, capture_output=True, timeout=COMMAND_TIMEOUT)
    finally:
        gate.close()
    rows = plain_server.stored.rows()
    assert [row[1] for row in rows] == ["first.txt", "big.bin", "last.txt"]
    assert (again.returncode, again.stderr) == (0, b"")
    # the first file's attachment as the first run made it, then the other two
    assert again.stdout.decode().splitlines() == [
        f"{gate.url}/api/v3/attachments/{row[0]}" for row in rows]
    assert rows[0][0] == first
    assert resume_state(home) == remembered(gate.url, paths, again.stdout.decode().splitlines(),
                                            "multipart")


# --- tus: resumable ------------------------------------------------------------------------------

TUS = {"AFFIX_TUS_MAX_SIZE": str(HIGH_LIMIT)}
CHUNK = 128 * 1024


@pytest.fixture
def tus_server(tmp_path, databases):
    """A server that offers tus, with local storage."""
    with serving(tmp_path, databases, environ=TUS) as server:
        yield server


def test_a_file_goes_up_by_tus_in_chunks_into_a_work_package(capsys, tus_server, files, home,
                                                             databases, tmp_path):
    work_package = new_work_package(tus_server, databases, tmp_path)
    paths = files(**{"talk.bin": CONTENT, "empty.txt": b""})
    status, out, err = upload(capsys, client_environ(home, tus_server.api_key), *paths,
                              "--url", tus_server.url(""), "--chunk-size", "128K", "--json",
                              "--work-package", str(work_package), "--description", "The talk")
    assert (status, err) == (0, "")
    rows = tus_server.stored.rows()
    assert [row[1:4] for row in rows] == [("talk.bin", len(CONTENT), md5(CONTENT)),
                                          ("empty.txt", 0, md5(b""))]
    urls = [tus_server.url(f"/api/v3/attachments/{row[0]}") for row in rows]
    attachments = [fetched(tus_server, url) for url in urls]
    assert json.loads(out) == [
        {"file": path, "url": url, "way": "tus", "attachment": attachment}
        for path, url, attachment in zip(paths, urls, attachments)]
    for attachment in attachments:
        assert attachment["description"]["raw"] == "The talk"
        assert attachment["_links"]["container"]["href"] == (
            f"/api/v3/work_packages/{work_package}")
    # the tus uploads remembered while they ran, forgotten once done; the attachments kept
    assert resume_state(home) == remembered(tus_server.url(""), paths, urls, "tus",
                                            work_package, "The talk")


@pytest.mark.parametrize("interruption", ["ctrl-c", "dropped connection"])
def test_an_interrupted_tus_upload_resumes_where_it_stopped(tus_server, files, home,
                                                           interruption):
    content = random_bytes(4 * MiB, seed=5)
    [path] = files(**{"big.bin": content})
    # held in the middle of a chunk, so that the server keeps a part of one
    gate = Gate(tus_server.port, hold_after=2 * MiB + CHUNK // 2)
    environ = environ_without_affix(**client_environ(home, tus_server.api_key))
    argv = client_command(path, "--url", gate.url, "--chunk-size", str(CHUNK))
    try:
        process = subprocess.Popen(argv, cwd=REPO_ROOT, env=environ, stdout=subprocess.PIPE,
                                   stderr=subprocess.PIPE)
        wait_for(gate.holding.is_set, "the client in the middle of the file")
        [upload_url] = resume_state(home)["uploads"].values()
        # asked past the gate: what the server holds of the file now
        direct_url = upload_url.replace(gate.url, tus_server.url(""))

        def held():
            response = requests.head(direct_url, headers={**tus_server.auth,
                                                          "Tus-Resumable": "1.0.0"},
                                     timeout=REQUEST_TIMEOUT)
            assert response.status_code in (200, 204), response.text
            return int(response.headers["Upload-Offset"])
        wait_for(lambda: held() >= CHUNK, "a chunk stored")
        if interruption == "ctrl-c":
            process.send_signal(signal.SIGINT)
        else:
            gate.cut()
        out, err = process.communicate(timeout=COMMAND_TIMEOUT)
        assert (process.returncode, out) == (130 if interruption == "ctrl-c" else 1, b"")
        again = (" 0 of 1 file; to go on, run the same command again:\n"
                 f"  affix upload {path} --url {gate.url} --chunk-size 128K\n")
        assert err.decode() == (
            "affix: interrupted; uploaded" + again if interruption == "ctrl-c" else
            f"affix: error: {path}: no answer from {gate.url} (ConnectionError)\n"
            "affix: uploaded" + again)
        assert tus_server.stored.rows() == []
        # the server sees the connection go (cut, or dropped with the held ones as the gate
        # opens) and keeps the part of a chunk that arrived
        gate.release()
        wait_for(lambda: held() % CHUNK != 0, "the part of a chunk kept")
        offset = held()
        assert 2 * MiB < offset < 2 * MiB + CHUNK // 2
        resumed = subprocess.run(argv, cwd=REPO_ROOT, env=environ, capture_output=True,
                                 timeout=COMMAND_TIMEOUT)
        sent_again = gate.forwarded
    finally:
        gate.close()
    [(attachment_id, name, size, digest, _)] = tus_server.stored.rows()
    assert (resumed.returncode, resumed.stderr) == (0, b"")
    assert resumed.stdout.decode() == f"{gate.url}/api/v3/attachments/{attachment_id}\n"
    assert (name, size, digest) == ("big.bin", len(content), md5(content))
    # the rest of the file, and requests' headers: nothing the server held went again
    assert len(content) - offset <= sent_again < len(content) - offset + 16 * 1024
    assert resume_state(home) == remembered(gate.url, [path], resumed.stdout.decode().split(),
                                            "tus")


def test_an_upload_the_server_no_longer_knows_starts_afresh(capsys, tus_server, files, home):
    [path] = files(**{"a.bin": CONTENT})
    state = ResumeState(home / "state" / "affix" / "uploads.json")
    root = tus_server.url("")
    key = ResumeState.upload_key(root, Path(path), None, None)
    state.remember(key, tus_server.url("/api/v3/attachments/tus/0123456789abcdef"))
    status, out, err = upload(capsys, client_environ(home, tus_server.api_key), path,
                              "--url", root)
    assert (status, err) == (0, "")
    [(attachment_id, name, size, digest, _)] = tus_server.stored.rows()
    assert (size, digest) == (len(CONTENT), md5(CONTENT))
    assert resume_state(home) == remembered(root, [path], [out.strip()], "tus")


def test_a_file_over_the_tus_limit_gets_the_servers_message(capsys, tmp_path, databases, files,
                                                            home):
    limit = 200 * 1024
    paths = files(**{"big.bin": CONTENT, "small.txt": b"small\n"})
    with serving(tmp_path, databases, environ={"AFFIX_TUS_MAX_SIZE": str(limit)}) as server:
        status, out, err = upload(capsys, client_environ(home, server.api_key), *paths,
                                  "--url", server.url(""), "--json")
        [(attachment_id, name, *_)] = server.stored.rows()
        url = server.url(f"/api/v3/attachments/{attachment_id}")
        too_large = f"File is too large (maximum size is {limit} Bytes)."
        assert json.loads(out) == [
            {"file": paths[0], "error": too_large, "fix": FIXES[413]},
            {"file": paths[1], "url": url, "way": "tus", "attachment": fetched(server, url)}]
    assert (status, name) == (1, "small.txt")
    assert err == (
        f"affix: error: {paths[0]}: {too_large}\n"
        f"  {FIXES[413]}\n" + refused_in_the_end(1, "2 files", [paths[1]]))
    # no tus upload to resume (the refused file's was never created), and what the command
    # uploaded, for when it runs again
    command = ResumeState.command_key(server.url(""), [Path(each) for each in paths], None, None)
    assert resume_state(home) == {"commands": {command: {paths[1]: {"url": url, "way": "tus"}}}}


# --- behind deploy/nginx.conf's nginx -------------------------------------------------------------

LARGE = random_bytes(20 * MiB, seed=25)


@pytest.mark.parametrize("chunk_size, notice", [
    # the default piece fits the recipe's client_max_body_size 6m
    (None, ""),
    # a piece the proxy refuses (413) is sent again in halves, and the client says so
    ("8M", "affix: the server refused a piece of 8.0MiB as too large (413); going on with "
           "pieces of 4.0MiB (--chunk-size 4M next time)\n")])
def test_a_large_file_goes_up_by_tus_through_the_nginx_recipe(capsys, tus_server, files, home,
                                                          tmp_path, chunk_size, notice):
    [path] = files(**{"large.bin": LARGE})
    chosen = ["--chunk-size", chunk_size] if chunk_size else []
    with nginx_in_front(tmp_path / "nginx", tus_server.port) as base_url:
        status, out, err = upload(capsys, client_environ(home, tus_server.api_key), path,
                                  "--url", base_url, *chosen)
    assert (status, err) == (0, notice)
    [(attachment_id, name, size, digest, _)] = tus_server.stored.rows()
    assert out == f"{base_url}/api/v3/attachments/{attachment_id}\n"
    assert (name, size, digest) == ("large.bin", len(LARGE), md5(LARGE))


def test_a_file_over_the_proxys_limit_is_refused_for_good(capsys, plain_server, files, home,
                                                          tmp_path):
    [path] = files(**{"large.bin": LARGE[:7 * MiB]})
    with nginx_in_front(tmp_path / "nginx", plain_server.port) as base_url:
        status, out, err = upload(capsys, client_environ(home, plain_server.api_key), path,
                                  "--url", base_url)
    assert (status, out) == (1, "")
    # nginx's own page, HTML: its status line is all the client can tell
    assert err == (f"affix: error: {path}: the server answered 413 Request Entity Too Large\n"
                   f"  {FIXES[413]}\n" + refused_in_the_end(0, "1 file"))
    assert plain_server.stored.rows() == []


# --- direct uploads in parts: straight to the bucket, several parts at once ----------------------

PARTS_CONTENT = png_bytes(3, 2) + random_bytes(HIGH_LIMIT - len(png_bytes(3, 2)), seed=29)
PART = 8 * MiB


def test_a_killed_upload_in_parts_resumes_with_little_of_it_through_affix(
        capsys, tmp_path, databases, s3_bucket, clamd, files, home):
    [path] = files(**{"big.png": PARTS_CONTENT})
    # the parts' way to the bucket, held once two and a half parts went through
    gate = Gate(int(s3_bucket.endpoint_url.rsplit(":", 1)[1]), hold_after=PART * 5 // 2)
    environ = {**s3_environ(gate.url), "AFFIX_STORAGE_URL": s3_bucket.url("blobs"),
               "AFFIX_SCAN_MODE": "stream", "AFFIX_CLAMD": clamd.socket_path}
    bucket = s3_bucket.client

    def held_parts():
        [upload] = bucket.list_multipart_uploads(Bucket=s3_bucket.name)["Uploads"]
        return bucket.list_parts(Bucket=s3_bucket.name, Key=upload["Key"],
                                 UploadId=upload["UploadId"]).get("Parts", [])
    try:
        with serving(tmp_path, databases, environ=environ) as server:
            # what the client sends to affix, counted
            counted = CountingRelay((HOST, server.port))
            client = environ_without_affix(**client_environ(home, server.api_key))
            argv = client_command(path, "--url", counted.url, "--parallel", "2")
            process = subprocess.Popen(argv, cwd=REPO_ROOT, env=client,
                                       stdout=subprocess.PIPE, stderr=subprocess.PIPE)
            wait_for(gate.holding.is_set, "the client in the middle of the file")
            wait_for(lambda: held_parts(), "a part in the bucket")
            process.kill()
            process.communicate(timeout=COMMAND_TIMEOUT)
            held = sum(part["Size"] for part in held_parts())
            gate.release()
            status, out, err = upload(capsys, client, path, "--url", counted.url, "--json")
            sent_again = gate.forwarded
            rows = server.stored.rows()
            through_affix, _ = counted.counts()
            counted.close()
    finally:
        gate.close()
    assert (status, err) == (0, "")
    [result] = json.loads(out)
    assert result["way"] == "direct-parts"
    attachment = result["attachment"]
    assert (attachment["status"], attachment["contentType"], attachment["digest"]["hash"]) == (
        "scanned", "image/png", md5(PARTS_CONTENT))
    assert [row[1:4] for row in rows] == [("big.png", len(PARTS_CONTENT), md5(PARTS_CONTENT))]
    # both runs sent affix requests only, no file bytes
    assert through_affix < len(PARTS_CONTENT) // 100
    # the second run sent the parts the bucket lacked, and affix's own requests to the bucket
    assert len(PARTS_CONTENT) - held <= sent_again < len(PARTS_CONTENT) - held + 256 * 1024
    assert held >= PART
    assert s3_bucket.pending_uploads() == []
    assert [md5(stored) for stored in s3_bucket.objects().values()] == [md5(PARTS_CONTENT)]
    assert resume_state(home) == remembered(counted.url, [path], [result["url"]], "direct-parts")


def parts_through(gate, s3_bucket) -> dict:
    """A direct-parts server's settings, with the bucket (and so the parts' URLs) behind
    ``gate``."""
    return {**s3_environ(gate.url), "AFFIX_STORAGE_URL": s3_bucket.url("blobs")}


def test_after_a_failed_part_no_other_begins_and_the_same_command_finishes_the_file(
        tmp_path, databases, s3_bucket, files, home):
    content = random_bytes(6 * PART, seed=31)
    [path] = files(**{"six.bin": content})
    # two parts in flight, held once a part and a half went through
    gate = Gate(int(s3_bucket.endpoint_url.rsplit(":", 1)[1]), hold_after=PART * 3 // 2)
    try:
        with serving(tmp_path, databases, environ=parts_through(gate, s3_bucket)) as server:
            environ = environ_without_affix(**client_environ(home, server.api_key))
            argv = client_command(path, "--url", server.url(""), "--parallel", "2")
            process = subprocess.Popen(argv, cwd=REPO_ROOT, env=environ,
                                       stdout=subprocess.PIPE, stderr=subprocess.PIPE)
            wait_for(gate.holding.is_set, "two parts in the middle")
            # the held parts' connections dropped, as a network that went away; the way to
            # the bucket open again for whatever the client sends next
            gate.release()
            out, err = process.communicate(timeout=COMMAND_TIMEOUT)
            sent_after_the_failure = gate.forwarded
            rows_after_the_failure = server.stored.rows()
            [pending] = s3_bucket.client.list_multipart_uploads(Bucket=s3_bucket.name)["Uploads"]
            parts_held = s3_bucket.client.list_parts(
                Bucket=s3_bucket.name, Key=pending["Key"],
                UploadId=pending["UploadId"]).get("Parts", [])
            again = subprocess.run(argv, cwd=REPO_ROOT, env=environ, capture_output=True,
                                   timeout=COMMAND_TIMEOUT)
            rows = server.stored.rows()
    finally:
        gate.close()
    assert process.returncode == 1
    assert out == b""
    assert err.decode() == (
        f"affix: error: {path}: no answer from {server.url('')} (ConnectionError)\n"
        f"affix: uploaded 0 of 1 file; to go on, run the same command again:\n"
        f"  affix upload {path} --url {server.url('')} --parallel 2\n")
    # no part began after the failure: nothing went to the bucket once the gate opened
    assert sent_after_the_failure == 0
    # the upload prepared and waiting; in the bucket at most the one part that may have gone
    # through whole before the gate held
    [(_, name, size, digest, *_)] = rows_after_the_failure
    assert (name, size, digest) == ("six.bin", len(content), "")
    assert [part["Size"] for part in parts_held] in ([], [PART])
    # and the same command sends the rest of the file
    assert (again.returncode, again.stderr) == (0, b"")
    assert [row[1:4] for row in rows] == [("six.bin", len(content), md5(content))]
    assert s3_bucket.pending_uploads() == []
    assert s3_bucket.objects() == {f"blobs/{rows[0][4]}": content}


def test_more_parts_than_one_batch_of_urls_go_at_once(tmp_path, databases, s3_bucket, home):
    parallel = URL_BATCH + 4
    # a part for each, the last of one byte; sparse: only the parts' first bytes are read
    path = tmp_path / "files" / "wide.bin"
    path.parent.mkdir()
    with open(path, "wb") as sparse:
        sparse.truncate((parallel - 1) * PART + 1)
    gate = Gate(int(s3_bucket.endpoint_url.rsplit(":", 1)[1]))

    def parts_begun():
        # a part's PUT to its pre-signed URL (the server's own PUT, its probe, names no part)
        return [line for line in gate.request_lines
                if line.startswith("PUT ") and "partNumber=" in line]
    try:
        with serving(tmp_path, databases, limit=parallel * PART,
                     environ=parts_through(gate, s3_bucket)) as server:
            # every connection from here on holds once a few bytes went through: no part ends
            gate.release(hold_after=64 * 1024)
            environ = environ_without_affix(**client_environ(home, server.api_key))
            process = subprocess.Popen(
                client_command(str(path), "--url", server.url(""), "--parallel", str(parallel)),
                cwd=REPO_ROOT, env=environ, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            try:
                wait_for(lambda: len(parts_begun()) >= parallel, f"{parallel} parts in flight")
            finally:
                process.kill()
                process.wait(timeout=COMMAND_TIMEOUT)
            begun = parts_begun()
    finally:
        gate.close()
    # each part once, and no more than --parallel while none ended
    assert sorted(int(re.search(r"partNumber=(\d+)", line).group(1)) for line in begun) == (
        list(range(1, parallel + 1)))


def test_the_guide_s_walkthrough_uploads_in_parts_and_resumes(tmp_path, databases, s3_bucket,
                                                              files):
    content = random_bytes(PART + 5, seed=30)
    [path] = files(**{"notes.bin": content})
    script = REPO_ROOT / "docs" / "examples" / "upload_in_parts.py"
    environ = {**NO_TUS, **s3_environ(s3_bucket.endpoint_url),
               "AFFIX_STORAGE_URL": s3_bucket.url("blobs")}
    with serving(tmp_path, databases, environ=environ) as server:
        client = environ_without_affix(AFFIX_API_KEY=server.api_key)
        # a first run that stops after the first part: the second goes on with the parts URL
        bucket = s3_bucket.client
        session = requests.Session()
        session.auth = ("apikey", server.api_key)
        guide = runpy.run_path(str(script))
        parts_url = guide["prepare"](session, server.url(""), path)
        [first] = session.get(f"{parts_url}/urls", params={"partNumbers": "1"}).json()["parts"]
        guide["put_part"](path, first, PART)
        ran = subprocess.run([sys.executable, str(script), server.url(""), path, parts_url],
                             env=client, capture_output=True, timeout=COMMAND_TIMEOUT)
        rows = server.stored.rows()
    assert (ran.returncode, ran.stderr) == (0, b"")
    [(attachment_id, name, size, digest, _)] = rows
    assert ran.stdout.decode().splitlines() == [parts_url, f"{attachment_id} {md5(content)}"]
    assert (name, size, digest) == ("notes.bin", len(content), md5(content))
    assert bucket.list_multipart_uploads(Bucket=s3_bucket.name).get("Uploads", []) == []
