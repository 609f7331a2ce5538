"""affix embedded in a larger site, served for real: gunicorn --preload serving from every
worker, a host project whose own top-level packages share the names of affix's folders under
gunicorn, and a host that mounts affix under a path prefix, over real HTTP. (In process:
functional/test_embedding.py.)"""
import concurrent.futures
import contextlib
import re
import subprocess
import sys
import threading
from pathlib import Path
from wsgiref.simple_server import WSGIRequestHandler, make_server

import pytest
import requests

from affix.app import open_catalog
from affix.app.testing import People, upload_form
from support.content import md5, png_bytes, random_bytes
from support.errors import NO_SUCH_ATTACHMENT
from support.net import HOST, REQUEST_TIMEOUT, free_port
from support.processes import REPO_ROOT, environ_without_affix, open_files_below, stop
from support.servers import STARTUP_TIMEOUT, booted_worker_pids
from support.state import Stored, containers
from support.waiting import wait_for
from support.work_packages import SUBJECT

# --- gunicorn --preload ----------------------------------------------------------------------

ACCESS_LOG_LINE = re.compile(r"^<(\d+)> (\S+) (\S+) (\d{3})$", re.MULTILINE)
PRELOAD_UPLOADS = 8


def answers(url, headers) -> bool:
    try:
        return requests.get(url, headers=headers, timeout=1).status_code == 200
    except (requests.ConnectionError, requests.Timeout):
        return False


def upload_and_read(base_url, headers, file_name, content):
    """(upload response, download response) of one attachment, over HTTP."""
    body, content_type = upload_form(file_name, content)
    uploaded = requests.post(f"{base_url}/api/v3/attachments", data=body,
                             headers={**headers, "Content-Type": content_type},
                             timeout=REQUEST_TIMEOUT)
    if uploaded.status_code != 200:
        return uploaded, None
    downloaded = requests.get(
        base_url + uploaded.json()["_links"]["downloadLocation"]["href"], headers=headers,
        timeout=REQUEST_TIMEOUT,
    )
    return uploaded, downloaded


def served_by(server_log) -> set:
    """The pids of the workers that answered a request, from the access log."""
    return {int(pid) for pid, _, _, _ in ACCESS_LOG_LINE.findall(server_log)}


@contextlib.contextmanager
def gunicorn(affix_environ, log_path, wsgi_app="affix:create_app()", cwd=REPO_ROOT):
    """``gunicorn --preload <wsgi_app>`` (two gthread workers) on loopback, run in ``cwd``,
    configured by the environment alone, its output in ``log_path``; yields (process, base
    URL) and stops it at the end."""
    port = free_port()
    with open(log_path, "wb") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "gunicorn", "--preload", "--worker-class", "gthread",
             "--workers", "2", "--threads", "2", "--bind", f"{HOST}:{port}",
             "--access-logfile", "-", "--access-logformat", "%(p)s %(m)s %(U)s %(s)s",
             wsgi_app],
            cwd=cwd, env=environ_without_affix(**affix_environ),
            stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
            # stop() kills the whole group if SIGTERM is not enough
            start_new_session=True,
        )
    try:
        yield process, f"http://{HOST}:{port}"
    finally:
        stop(process)


def test_gunicorn_preload_serves_from_every_worker(tmp_path, databases):
    settings = databases.settings(tmp_path / "data")
    log_path = tmp_path / "gunicorn.log"
    contents = {f"file-{n}.bin": random_bytes(32 * 1024 + n, seed=n)
                for n in range(PRELOAD_UPLOADS)}

    def server_log():
        return log_path.read_text(errors="replace")

    catalog = open_catalog(settings)
    with contextlib.closing(catalog.database):
        people = People(catalog)
        people.add("ada", admin=True)
        auth = people.auth("ada")
        with gunicorn(databases.environ(settings.data_dir), log_path) as (
                process, base_url):
            def ready():
                assert process.poll() is None, server_log()
                return (len(booted_worker_pids(server_log())) == 2
                        and answers(f"{base_url}/api/v3", auth))
            wait_for(ready, "gunicorn --preload with two workers", timeout=STARTUP_TIMEOUT)

            with concurrent.futures.ThreadPoolExecutor(PRELOAD_UPLOADS) as pool:
                results = dict(zip(contents, pool.map(
                    lambda item: upload_and_read(base_url, auth, *item), contents.items()
                )))

            def every_worker_served():
                if served_by(server_log()) == booted_worker_pids(server_log()):
                    return True
                # the kernel picks the worker that accepts: one more request, until both have
                answers(f"{base_url}/api/v3", auth)
                return False
            wait_for(every_worker_served, "a request answered by each worker")
            # the app was created in the master, before the fork: it keeps no database open
            assert open_files_below(process.pid, settings.data_dir) == []
        rows, files = Stored(catalog, Path(settings.storage_url)).snapshot()

    for file_name, (uploaded, downloaded) in results.items():
        assert uploaded.status_code == 200, (file_name, uploaded.text, server_log())
        assert uploaded.json()["digest"] == {"algorithm": "md5", "hash": md5(contents[file_name])}
        assert downloaded.status_code == 200
        assert downloaded.content == contents[file_name]
    assert sorted(row[0] for row in rows) == list(range(1, PRELOAD_UPLOADS + 1))
    assert {row[1]: (row[2], row[3]) for row in rows} == {
        file_name: (len(content), md5(content)) for file_name, content in contents.items()}
    assert sorted(files.values()) == sorted(contents.values())
    assert {status for _, _, _, status in ACCESS_LOG_LINE.findall(server_log())} == {"200"}
    assert "Traceback" not in server_log()


# --- a host project with top-level packages of the same names as affix's folders -------------

HOST_PROJECT = {
    # the layout of most Flask and Falcon projects: the WSGI app in a top-level package "app"
    "app/__init__.py": """
from affix import create_app
from plugins import GREETING
from storage import SHELF

affix = create_app()


def application(environ, start_response):
    path = environ.get("PATH_INFO", "")
    if path.startswith("/files/"):
        environ = {**environ, "SCRIPT_NAME": "/files", "PATH_INFO": path[len("/files"):]}
        return affix(environ, start_response)
    page = f"{GREETING} {SHELF}\\n".encode()
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", str(len(page)))])
    return [page]
""",
    "plugins/__init__.py": 'GREETING = "the host\'s plugins"\n',
    "storage/__init__.py": 'SHELF = "and the host\'s storage"\n',
}


def test_a_host_with_its_own_app_plugins_and_storage_mounts_affix_under_gunicorn(
        tmp_path, databases):
    project = tmp_path / "host"
    for name, source in HOST_PROJECT.items():
        (project / name).parent.mkdir(parents=True, exist_ok=True)
        (project / name).write_text(source.lstrip())
    settings = databases.settings(tmp_path / "data")
    log_path = tmp_path / "gunicorn.log"
    catalog = open_catalog(settings)
    with contextlib.closing(catalog.database):
        people = People(catalog)
        people.add("ada", admin=True)
        auth = people.auth("ada")
        with gunicorn(databases.environ(settings.data_dir), log_path, "app:application",
                      cwd=project) as (process, base_url):
            def ready():
                assert process.poll() is None, log_path.read_text(errors="replace")
                return answers(f"{base_url}/files/api/v3", auth)
            wait_for(ready, "the host under gunicorn", timeout=STARTUP_TIMEOUT)

            page = requests.get(f"{base_url}/", timeout=REQUEST_TIMEOUT)
            body, content_type = upload_form("cat.png", png_bytes())
            uploaded = requests.post(f"{base_url}/files/api/v3/attachments", data=body,
                                     headers={**auth, "Content-Type": content_type},
                                     timeout=REQUEST_TIMEOUT)
            downloaded = requests.get(f"{base_url}/files/api/v3/attachments/1/download",
                                      headers=auth, timeout=REQUEST_TIMEOUT)
        rows, files = Stored(catalog, Path(settings.storage_url)).snapshot()

    assert (page.status_code, page.text) == (200, "the host's plugins and the host's storage\n")
    assert uploaded.status_code == 200, uploaded.text
    assert uploaded.json()["_links"]["downloadLocation"] == {
        "href": "/files/api/v3/attachments/1/download"}
    assert (downloaded.status_code, downloaded.content) == (200, png_bytes())
    assert [row[:3] for row in rows] == [(1, "cat.png", len(png_bytes()))]
    assert list(files.values()) == [png_bytes()]
    assert "Traceback" not in log_path.read_text(errors="replace")


# --- mounted under a prefix, over real HTTP --------------------------------------------------

PREFIX = "/files"
HOST_PAGE = b"The host's own page.\n"
WORK_PACKAGE_PERMISSIONS = ["add_work_packages", "view_work_packages", "edit_work_packages"]


class PrefixDispatcher:
    """The host: affix under ``prefix`` (moved from PATH_INFO to SCRIPT_NAME, as WSGI mounts
    do), its own page everywhere else."""

    def __init__(self, prefix, mounted):
        self.prefix = prefix
        self.mounted = mounted

    def __call__(self, environ, start_response):
        path = environ.get("PATH_INFO", "")
        if path == self.prefix or path.startswith(self.prefix + "/"):
            environ = {**environ,
                       "SCRIPT_NAME": environ.get("SCRIPT_NAME", "") + self.prefix,
                       "PATH_INFO": path[len(self.prefix):]}
            return self.mounted(environ, start_response)
        start_response("200 OK", [("Content-Type", "text/plain; charset=utf-8"),
                                  ("Content-Length", str(len(HOST_PAGE)))])
        return [HOST_PAGE]


class QuietHandler(WSGIRequestHandler):
    def log_message(self, format, *args):
        """No access log on the test's stderr."""


@contextlib.contextmanager
def serving(wsgi_app):
    """``wsgi_app`` served on loopback in a thread; yields the base URL."""
    server = make_server(HOST, 0, wsgi_app, handler_class=QuietHandler)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05},
                              daemon=True)
    thread.start()
    try:
        yield f"http://{HOST}:{server.server_port}"
    finally:
        server.shutdown()
        thread.join(REQUEST_TIMEOUT)
        server.server_close()


@pytest.fixture
def host(app):
    """The base URL of the host that mounts the conftest app at PREFIX."""
    with serving(PrefixDispatcher(PREFIX, app)) as base_url:
        yield base_url


@pytest.fixture
def wendy(people):
    """A member of the project "demo" (id 1) who may create and edit work packages: user 4."""
    user = people.add("wendy", name="Wendy", permissions=WORK_PACKAGE_PERMISSIONS)
    assert user.id == 4
    return people.auth("wendy")


def http_upload(url, headers, file_name, content):
    body, content_type = upload_form(file_name, content)
    return requests.post(url, data=body, headers={**headers, "Content-Type": content_type},
                         timeout=REQUEST_TIMEOUT)


def test_the_host_answers_its_own_paths(host, people):
    for path in ["/", "/api/v3", "/filesystem", "/other/files"]:
        response = requests.get(host + path, headers=people.auth("ada"), timeout=REQUEST_TIMEOUT)
        assert (response.status_code, response.content) == (200, HOST_PAGE), path


def test_the_api_root_under_a_prefix(host, people):
    response = requests.get(f"{host}{PREFIX}/api/v3", headers=people.auth("ada"),
                            timeout=REQUEST_TIMEOUT)

    assert response.status_code == 200
    assert response.json() == {
        "_type": "Root", "instanceName": "affix",
        "_links": {
            "self": {"href": "/files/api/v3"},
            "attachments": {"href": "/files/api/v3/attachments"},
            "configuration": {"href": "/files/api/v3/configuration"},
            "projects": {"href": "/files/api/v3/projects"},
            "workPackages": {"href": "/files/api/v3/work_packages"},
            "types": {"href": "/files/api/v3/types"},
            "statuses": {"href": "/files/api/v3/statuses"},
            "priorities": {"href": "/files/api/v3/priorities"},
            "user": {"href": "/files/api/v3/users/1", "title": "Ada Admin"},
        },
    }


def test_every_link_of_an_upload_carries_the_prefix_and_leads_there(host, people, stored):
    auth = people.auth("ada")
    png = png_bytes()

    response = http_upload(f"{host}{PREFIX}/api/v3/attachments", auth, "cat.png", png)

    assert response.status_code == 200, response.text
    links = response.json()["_links"]
    assert links == {
        "self": {"href": "/files/api/v3/attachments/1", "title": "cat.png"},
        "author": {"href": "/files/api/v3/users/1", "title": "Ada Admin"},
        "container": {"href": None},
        "staticDownloadLocation": {"href": "/files/api/v3/attachments/1/download"},
        "downloadLocation": {"href": "/files/api/v3/attachments/1/download"},
        "delete": {"href": "/files/api/v3/attachments/1", "method": "delete"},
    }
    attachment = requests.get(host + links["self"]["href"], headers=auth, timeout=REQUEST_TIMEOUT)
    assert (attachment.status_code, attachment.json()["_links"]) == (200, links)
    author = requests.get(host + links["author"]["href"], headers=auth, timeout=REQUEST_TIMEOUT)
    assert author.status_code == 200
    assert author.json()["_links"] == {
        "self": {"href": "/files/api/v3/users/1", "title": "Ada Admin"}}
    for name in ["staticDownloadLocation", "downloadLocation"]:
        download = requests.get(host + links[name]["href"], headers=auth,
                                timeout=REQUEST_TIMEOUT)
        assert (download.status_code, download.content) == (200, png), name
    deleted = requests.delete(host + links["delete"]["href"], headers=auth,
                              timeout=REQUEST_TIMEOUT)
    assert deleted.status_code == 204
    gone = requests.get(host + links["self"]["href"], headers=auth, timeout=REQUEST_TIMEOUT)
    assert (gone.status_code, gone.json()["message"]) == (404, NO_SUCH_ATTACHMENT)
    assert stored.snapshot() == ([], {})


def work_package_links(work_package_id) -> dict:
    href = f"/files/api/v3/work_packages/{work_package_id}"
    return {
        "self": {"href": href, "title": SUBJECT},
        "project": {"href": "/files/api/v3/projects/1", "title": "Demo"},
        "author": {"href": "/files/api/v3/users/4", "title": "Wendy"},
        "type": {"href": "/files/api/v3/types/1", "title": "Task"},
        "status": {"href": "/files/api/v3/statuses/1", "title": "New"},
        "priority": {"href": "/files/api/v3/priorities/2", "title": "Normal"},
        "attachments": {"href": f"{href}/attachments"},
        "addAttachment": {"href": f"{href}/attachments", "method": "post"},
        "update": {"href": f"{href}/form", "method": "post"},
        "updateImmediately": {"href": href, "method": "patch"},
    }


def claimed_attachment_links(attachment_id, file_name) -> dict:
    """The links of Wendy's attachment ``attachment_id`` once work package 1 claimed it."""
    href = f"/files/api/v3/attachments/{attachment_id}"
    return {
        "self": {"href": href, "title": file_name},
        "author": {"href": "/files/api/v3/users/4", "title": "Wendy"},
        "container": {"href": "/files/api/v3/work_packages/1", "title": SUBJECT},
        "staticDownloadLocation": {"href": f"{href}/download"},
        "downloadLocation": {"href": f"{href}/download"},
        "delete": {"href": href, "method": "delete"},
    }


def assert_attachments_of_work_package_1(collection, file_names):
    """``file_names``: the expected attachments' file names by id."""
    assert collection["_links"] == {"self": {"href": "/files/api/v3/work_packages/1/attachments"}}
    assert [element["_links"] for element in collection["_embedded"]["elements"]] == [
        claimed_attachment_links(attachment_id, file_name)
        for attachment_id, file_name in file_names.items()]


def test_claims_through_a_mounted_app_with_and_without_the_prefix(host, wendy, catalog):
    api = f"{host}{PREFIX}/api/v3"
    first = http_upload(f"{api}/attachments", wendy, "first.txt", b"first")
    second = http_upload(f"{api}/attachments", wendy, "second.txt", b"second")
    assert [first.json()["id"], second.json()["id"]] == [1, 2]

    created = requests.post(
        f"{api}/projects/1/work_packages", headers=wendy, timeout=REQUEST_TIMEOUT,
        json={"subject": SUBJECT,
              "_links": {"attachments": [{"href": "/files/api/v3/attachments/1"}]}},
    )
    assert created.status_code == 201, created.text
    assert created.json()["_links"] == work_package_links(1)
    assert_attachments_of_work_package_1(created.json()["_embedded"]["attachments"],
                                         {1: "first.txt"})

    patched = requests.patch(
        f"{api}/work_packages/1", headers=wendy, timeout=REQUEST_TIMEOUT,
        json={"lockVersion": 0, "_links": {"attachments": [{"href": "/api/v3/attachments/2"}]}},
    )
    assert patched.status_code == 200, patched.text
    assert patched.json()["_links"] == work_package_links(1)
    assert_attachments_of_work_package_1(patched.json()["_embedded"]["attachments"],
                                         {1: "first.txt", 2: "second.txt"})
    assert containers(catalog) == {1: ("WorkPackage", 1), 2: ("WorkPackage", 1)}

    links = patched.json()["_links"]
    for name in ["self", "project", "author", "type", "status", "priority", "attachments"]:
        followed = requests.get(host + links[name]["href"], headers=wendy,
                                timeout=REQUEST_TIMEOUT)
        assert followed.status_code == 200, name
        assert followed.json()["_links"]["self"]["href"] == links[name]["href"]
    listed = requests.get(host + links["attachments"]["href"], headers=wendy,
                          timeout=REQUEST_TIMEOUT)
    assert_attachments_of_work_package_1(listed.json(), {1: "first.txt", 2: "second.txt"})

    added = http_upload(host + links["addAttachment"]["href"], wendy, "third.txt", b"third")
    assert added.status_code == 200, added.text
    assert added.json()["_links"] == claimed_attachment_links(3, "third.txt")
    assert containers(catalog) == {
        1: ("WorkPackage", 1), 2: ("WorkPackage", 1), 3: ("WorkPackage", 1)}


def test_a_project_href_with_the_prefix_is_understood(host, wendy):
    created = requests.post(
        f"{host}{PREFIX}/api/v3/work_packages", headers=wendy, timeout=REQUEST_TIMEOUT,
        json={"subject": SUBJECT, "_links": {"project": {"href": "/files/api/v3/projects/1"}}},
    )

    assert created.status_code == 201, created.text
    assert created.json()["_links"] == work_package_links(1)
