"""affix embedded in a larger site: two apps in one process that share nothing, importing that
has no side effects, gunicorn --preload, a host that mounts affix under a path prefix (over real
HTTP), and the host's identity through the ``affix_authenticate`` hook or a trusted REMOTE_USER."""
import concurrent.futures
import contextlib
import dataclasses
import os
import re
import shutil
import subprocess
import sys
import threading
from pathlib import Path
from wsgiref.simple_server import WSGIRequestHandler, make_server

import falcon.testing
import pluggy
import pytest
import requests

from affix.app import create_app, open_catalog
from affix.app.settings import Settings, SettingsError
from affix.app.testing import People, upload, upload_form
from affix.plugins.manager import create_plugin_manager
from affix.storage.database import release_connections
from support.content import md5, png_bytes, random_bytes
from support.defaults import FROZEN_NOW
from support.errors import (
    NO_SUCH_ATTACHMENT, NOT_AUTHORIZED, UNAUTHENTICATED, WRONG_CREDENTIALS, assert_error,
    assert_unauthenticated,
)
from support.net import HOST, REQUEST_TIMEOUT, free_port
from support.processes import REPO_ROOT, environ_without_affix, open_files_below, stop
from support.races import race
from support.servers import STARTUP_TIMEOUT, booted_worker_pids
from support.state import Stored, containers
from support.waiting import wait_for
from support.work_packages import SUBJECT

# for the subprocesses that import affix or pip-install it
SUBPROCESS_TIMEOUT = 30

host_hookimpl = pluggy.HookimplMarker("affix")


# --- helpers ---------------------------------------------------------------------------------

def make_app(settings, *plugins):
    """An affix app on ``settings`` with the built-in plugin and ``plugins``, registered in
    this order (pluggy asks the last registered first)."""
    manager = create_plugin_manager(load_entry_points=False)
    for plugin in plugins:
        manager.register(plugin)
    return create_app(settings, plugin_manager=manager, clock=lambda: FROZEN_NOW)


def simulate_upload(client, headers, file_name="notes.txt", content=b"hello", **options):
    return upload(client, headers, file_name, content, **options)


def current_user_link(response) -> dict:
    """The ``user`` link of an API root answered with 200."""
    assert response.status_code == 200, response.text
    return response.json["_links"]["user"]


def users(catalog):
    with catalog.database.connection_context():
        User = catalog.User
        return [(u.id, u.login, u.name, u.admin, u.locked)
                for u in User.select().order_by(User.id)]


def grant(catalog, login, *permissions):
    """Give the existing user ``login`` a role holding ``permissions`` in the project "demo"."""
    with catalog.database.connection_context():
        user = catalog.User.get(catalog.User.login == login)
        project, _ = catalog.Project.get_or_create(identifier="demo", defaults={"name": "Demo"})
        role = catalog.Role.create(name=f"role-of-{login}")
        for permission in permissions:
            catalog.RolePermission.create(role=role, permission=permission)
        catalog.Membership.create(user=user, project=project, role=role)


# --- two apps in one process -----------------------------------------------------------------

A_LIMIT = 64 * 1024
B_LIMIT = 16


@dataclasses.dataclass
class Instance:
    settings: Settings
    client: falcon.testing.TestClient
    people: People
    stored: Stored

    def download(self, login, attachment_id):
        return self.client.simulate_get(
            f"/api/v3/attachments/{attachment_id}/download", headers=self.people.auth(login)
        )


@pytest.fixture
def instance(tmp_path, databases):
    """Makes an affix app on a data dir (and database) of its own below ``tmp_path``."""
    with contextlib.ExitStack() as stack:
        def make(name, **overrides):
            settings = databases.settings(tmp_path / name, **overrides)
            client = falcon.testing.TestClient(make_app(settings))
            catalog = open_catalog(settings)
            stack.callback(catalog.database.close)
            return Instance(settings, client, People(catalog),
                            Stored(catalog, Path(settings.storage_url)))
        yield make


@pytest.fixture
def two_apps(instance):
    """Apps A and B, each with an admin "ada" of its own: user 1 in both."""
    a = instance("a", max_attachment_size=A_LIMIT)
    b = instance("b", max_attachment_size=B_LIMIT)
    a.people.add("ada", name="Ada of A", admin=True)
    b.people.add("ada", name="Ada of B", admin=True)
    return a, b


def test_users_and_keys_of_one_app_do_not_authenticate_in_the_other(two_apps):
    a, b = two_apps
    a.people.add("bob", name="Bob of A")

    assert current_user_link(a.client.simulate_get("/api/v3", headers=a.people.auth("ada"))) == {
        "href": "/api/v3/users/1", "title": "Ada of A"}
    assert current_user_link(b.client.simulate_get("/api/v3", headers=b.people.auth("ada"))) == {
        "href": "/api/v3/users/1", "title": "Ada of B"}
    for client, headers in [(b.client, a.people.auth("ada")), (b.client, a.people.auth("bob")),
                            (a.client, b.people.auth("ada"))]:
        assert_error(client.simulate_get("/api/v3", headers=headers),
                     401, "Unauthenticated", WRONG_CREDENTIALS)
    assert [row[1] for row in users(b.people.catalog)] == ["ada"]


def test_an_upload_to_one_app_is_invisible_in_the_other(two_apps, tmp_path, databases):
    a, b = two_apps
    content_a, content_b = b"only in A", b"only in B"

    uploaded_a = simulate_upload(a.client, a.people.auth("ada"), "a.txt", content_a)
    assert uploaded_a.status_code == 200
    assert uploaded_a.json["id"] == 1
    # B's admin may see every attachment of B, and B has none yet
    assert_error(b.client.simulate_get("/api/v3/attachments/1", headers=b.people.auth("ada")),
                 404, "NotFound", NO_SUCH_ATTACHMENT)
    assert_error(b.download("ada", 1), 404, "NotFound", NO_SUCH_ATTACHMENT)

    uploaded_b = simulate_upload(b.client, b.people.auth("ada"), "b.txt", content_b)
    assert uploaded_b.status_code == 200
    # the same id in both apps: what each one serves under it is its own
    assert uploaded_b.json["id"] == 1
    assert a.download("ada", 1).content == content_a
    assert b.download("ada", 1).content == content_b
    assert uploaded_b.json["digest"] == {"algorithm": "md5", "hash": md5(content_b)}

    # deleting B's attachment 1 leaves A's attachment 1 alone
    deleted = b.client.simulate_delete("/api/v3/attachments/1", headers=b.people.auth("ada"))
    assert deleted.status_code == 204
    assert a.download("ada", 1).content == content_a

    rows_a, files_a = a.stored.snapshot()
    assert [row[:4] for row in rows_a] == [(1, "a.txt", len(content_a), md5(content_a))]
    assert files_a == {rows_a[0][4]: content_a}
    assert b.stored.snapshot() == ([], {})
    assert sorted(path.name for path in tmp_path.iterdir()) == ["a", "b"]
    for each in (a, b):
        assert each.stored.blob_root.is_relative_to(each.settings.data_dir)
        # the embedded database is a file in the data dir; a server's is not
        assert (each.settings.data_dir / "affix.sqlite3").is_file() == (
            databases.kind == "sqlite")


def test_each_app_keeps_its_own_size_limit(two_apps):
    a, b = two_apps
    content = b"x" * (B_LIMIT + 1)

    assert simulate_upload(a.client, a.people.auth("ada"), content=content).status_code == 200
    assert_error(simulate_upload(b.client, b.people.auth("ada"), content=content),
                 422, "PropertyConstraintViolation",
                 f"File is too large (maximum size is {B_LIMIT} Bytes).", "fileSize")
    assert [row[2] for row in a.stored.rows()] == [B_LIMIT + 1]
    assert b.stored.snapshot() == ([], {})


def test_explicit_settings_win_over_the_environment(instance, tmp_path, monkeypatch):
    environment_dir = tmp_path / "from-environment"
    monkeypatch.setenv("AFFIX_MAX_ATTACHMENT_SIZE", "1")
    monkeypatch.setenv("AFFIX_DATA_DIR", str(environment_dir))
    monkeypatch.setenv("AFFIX_DATABASE_URL", f"sqlite:///{environment_dir}/other.sqlite3")
    monkeypatch.setenv("AFFIX_STORAGE_URL", str(environment_dir / "other-blobs"))
    monkeypatch.setenv("AFFIX_TRUST_REMOTE_USER", "1")
    explicit = instance("explicit")
    explicit.people.add("ada", admin=True)
    content = b"larger than one byte"

    response = simulate_upload(explicit.client, explicit.people.auth("ada"), content=content)

    assert response.status_code == 200, response.json
    assert [row[2] for row in explicit.stored.rows()] == [len(content)]
    assert_error(explicit.client.simulate_get("/api/v3", extras={"REMOTE_USER": "ada"}),
                 401, "Unauthenticated", UNAUTHENTICATED)
    assert not environment_dir.exists()


def test_without_settings_the_environment_is_read(tmp_path, monkeypatch, databases):
    data_dir = tmp_path / "from-environment"
    for name in [name for name in os.environ if name.startswith("AFFIX_")]:
        monkeypatch.delenv(name)
    for name, value in databases.environ(
            data_dir, AFFIX_MAX_ATTACHMENT_SIZE="4", AFFIX_TRUST_REMOTE_USER="1").items():
        monkeypatch.setenv(name, value)
    client = falcon.testing.TestClient(
        create_app(plugin_manager=create_plugin_manager(load_entry_points=False))
    )
    as_carol = {"REMOTE_USER": "carol"}

    response = client.simulate_get("/api/v3", extras=as_carol)

    assert current_user_link(response) == {"href": "/api/v3/users/1", "title": "carol"}
    catalog = open_catalog(databases.settings(data_dir))
    try:
        with catalog.database.connection_context():
            catalog.User.update(admin=True).execute()
        assert_error(simulate_upload(client, {}, content=b"hello", extras=as_carol),
                     422, "PropertyConstraintViolation",
                     "File is too large (maximum size is 4 Bytes).", "fileSize")
        assert users(catalog) == [(1, "carol", "carol", True, False)]
    finally:
        catalog.database.close()


# --- importing and preloading ----------------------------------------------------------------

IMPORT_PROBE = """
import socket, sqlite3
opened = []
sqlite3.connect = lambda *args, **kwargs: opened.append(("sqlite3", args))
socket.socket.connect = lambda self, address: opened.append(("socket", address))
import affix, affix.app.cli.commands, affix.app.attachments.resources, affix.plugins.hookspecs
import affix.storage.models, affix.storage.stores, affix.storage.database
print(opened)
"""


@pytest.mark.system  # a subprocess
def test_importing_affix_creates_and_opens_nothing(tmp_path):
    cwd = tmp_path / "cwd"
    cwd.mkdir()
    data_dir = tmp_path / "data"

    result = subprocess.run(
        [sys.executable, "-c", IMPORT_PROBE], cwd=cwd, capture_output=True, text=True,
        env=environ_without_affix(AFFIX_DATA_DIR=str(data_dir)),
        timeout=SUBPROCESS_TIMEOUT,
    )

    assert (result.returncode, result.stderr) == (0, "")
    # the installed affix was imported, and it connected to nothing
    assert result.stdout == "[]\n"
    assert list(cwd.iterdir()) == []
    assert not data_dir.exists()


class TableOfItsOwn:
    """A plugin that makes a table of its own as its container types are asked for, the way
    the README shows."""

    @host_hookimpl
    def affix_container_types(self, catalog):
        with catalog.schema_change():
            catalog.database.execute_sql(
                "CREATE TABLE IF NOT EXISTS plugin_things (id INTEGER PRIMARY KEY)")
        return []


@pytest.mark.sqlite_only("an open connection shows as open files of the data dir; PostgreSQL's "
                         "pool is released by the same call")
def test_the_app_holds_no_database_file_open_once_made_even_after_a_plugin_used_it(
        settings, plugin_manager):
    # gunicorn --preload makes the app before it forks: a connection still open here would be
    # shared by every worker
    plugin_manager.register(TableOfItsOwn())
    create_app(settings, plugin_manager=plugin_manager)

    assert open_files_below(os.getpid(), settings.data_dir) == []
    database = open_catalog(settings).database
    with database.connection_context():
        assert "plugin_things" in database.get_tables()
    release_connections(database)


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


@pytest.mark.system  # gunicorn
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


@pytest.mark.system  # gunicorn
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


@pytest.mark.system  # pip in a subprocess
def test_pip_install_adds_no_top_level_name_but_affix(tmp_path):
    # a copy: building writes build/ and *.egg-info next to the sources
    source = tmp_path / "source"
    shutil.copytree(REPO_ROOT, source, ignore=shutil.ignore_patterns(
        ".git", ".venv", "var", "build", "*.egg-info", "__pycache__", ".pytest_cache"))
    target = tmp_path / "site-packages"
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-index",
         "--no-build-isolation", "--target", str(target), str(source)],
        check=True, capture_output=True, timeout=SUBPROCESS_TIMEOUT * 4,
        env={**os.environ, "PIP_DISABLE_PIP_VERSION_CHECK": "1"},
    )

    installed = sorted(path.name for path in target.iterdir() if path.name != "bin")
    assert installed == ["affix", "affix-0.1.0.dist-info"]
    assert sorted(path.name for path in (target / "affix").iterdir()
                  if path.name != "__pycache__") == ["__init__.py", "app", "plugins", "storage"]


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


@pytest.mark.system  # a server on loopback (host)
def test_the_host_answers_its_own_paths(host, people):
    for path in ["/", "/api/v3", "/filesystem", "/other/files"]:
        response = requests.get(host + path, headers=people.auth("ada"), timeout=REQUEST_TIMEOUT)
        assert (response.status_code, response.content) == (200, HOST_PAGE), path


@pytest.mark.system  # a server on loopback (host)
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


@pytest.mark.system  # a server on loopback (host)
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


@pytest.mark.system  # a server on loopback (host)
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


@pytest.mark.system  # a server on loopback (host)
def test_a_project_href_with_the_prefix_is_understood(host, wendy):
    created = requests.post(
        f"{host}{PREFIX}/api/v3/work_packages", headers=wendy, timeout=REQUEST_TIMEOUT,
        json={"subject": SUBJECT, "_links": {"project": {"href": "/files/api/v3/projects/1"}}},
    )

    assert created.status_code == 201, created.text
    assert created.json()["_links"] == work_package_links(1)


# --- the host's identity ---------------------------------------------------------------------

SESSIONS = {"session-of-ada": "ada"}
BOB = {"href": "/api/v3/users/2", "title": "Bob Builder"}
RACERS = 6


class HostIdentity:
    """The host's plugin: the login its authenticating proxy put in ``X-Host-User``, else the
    owner of its session cookie; None when it cannot tell."""

    @host_hookimpl
    def affix_authenticate(self, request):
        login = request.get_header("X-Host-User")
        if login is None:
            login = SESSIONS.get(request.cookies.get("host_session"))
        return login


class FixedAnswer:
    """A plugin that answers ``answer`` for every request."""

    def __init__(self, answer):
        self.answer = answer

    @host_hookimpl
    def affix_authenticate(self):
        return self.answer


@pytest.fixture
def plugin_manager(plugin_manager):
    """Every app of the conftest fixtures in this module has the host's plugin. Without its
    header or cookie it names nobody, and the API keys decide as always (as in the tests
    above)."""
    plugin_manager.register(HostIdentity(), name="host-identity")
    return plugin_manager


@pytest.fixture
def trusting_client(settings, catalog):
    """An app on the conftest database that trusts REMOTE_USER."""
    return falcon.testing.TestClient(
        make_app(dataclasses.replace(settings, trust_remote_user=True))
    )


def root(client, headers=None, **options):
    return client.simulate_get("/api/v3", headers=headers or {}, **options)


def test_the_host_names_a_user_affix_knows(client, people, catalog):
    before = users(catalog)

    assert current_user_link(root(client, {"X-Host-User": "bob"})) == BOB
    assert current_user_link(root(client, cookies={"host_session": "session-of-ada"})) == {
        "href": "/api/v3/users/1", "title": "Ada Admin"}
    assert users(catalog) == before


def test_a_login_new_to_affix_is_created_once(client, people, catalog):
    as_dora = {"X-Host-User": "dora"}

    first, second = root(client, as_dora), root(client, as_dora)

    dora = {"href": "/api/v3/users/4", "title": "dora"}
    assert (current_user_link(first), current_user_link(second)) == (dora, dora)
    assert users(catalog)[3:] == [(4, "dora", "dora", False, False)]
    profile = client.simulate_get("/api/v3/users/4", headers=as_dora)
    assert (profile.status_code, profile.json["login"], profile.json["status"]) == (
        200, "dora", "active")


def test_first_requests_of_a_new_login_at_once_create_one_user(client, people, catalog):
    responses = race(*[lambda: root(client, {"X-Host-User": "dora"})] * RACERS)

    assert [current_user_link(response) for response in responses] == (
        [{"href": "/api/v3/users/4", "title": "dora"}] * RACERS)
    assert users(catalog)[3:] == [(4, "dora", "dora", False, False)]


def test_a_locked_user_named_by_the_host_is_refused(client, people, catalog):
    people.add("lou", locked=True)
    before = users(catalog)

    assert_unauthenticated(root(client, {"X-Host-User": "lou"}), WRONG_CREDENTIALS)
    assert users(catalog) == before


def test_when_the_host_names_nobody_the_api_key_decides(client, people, catalog):
    before = users(catalog)

    assert current_user_link(root(client, people.auth("bob"))) == BOB
    assert current_user_link(
        root(client, people.auth("bob"), cookies={"host_session": "forged"})) == BOB
    assert_unauthenticated(root(client))
    assert_unauthenticated(root(client, cookies={"host_session": "forged"}))
    assert users(catalog) == before


@pytest.mark.parametrize("answer", ["", "   ", 0, 42, False, b"bob", ["bob"], {"login": "bob"}])
def test_a_blank_or_non_text_answer_names_nobody(settings, people, catalog, answer):
    client = falcon.testing.TestClient(make_app(settings, FixedAnswer(answer)))
    before = users(catalog)

    assert current_user_link(root(client, people.auth("bob"))) == BOB
    assert_unauthenticated(root(client))
    assert users(catalog) == before


def test_the_hosts_user_uploads_only_with_a_permission(client, people, catalog, stored):
    as_nora = {"X-Host-User": "nora"}

    assert_error(simulate_upload(client, as_nora), 403, "MissingPermission", NOT_AUTHORIZED)
    assert stored.snapshot() == ([], {})
    assert users(catalog)[3:] == [(4, "nora", "nora", False, False)]

    grant(catalog, "nora", "edit_work_packages")
    accepted = simulate_upload(client, as_nora, "nora.txt", b"by nora")

    assert accepted.status_code == 200, accepted.json
    assert accepted.json["_links"]["author"] == {"href": "/api/v3/users/4", "title": "nora"}
    assert [row[:4] for row in stored.rows()] == [(1, "nora.txt", 7, md5(b"by nora"))]


def test_remote_user_is_trusted_when_enabled(trusting_client, people, catalog):
    as_carol = {"REMOTE_USER": "carol"}

    first, second = root(trusting_client, extras=as_carol), root(trusting_client, extras=as_carol)

    carol = {"href": "/api/v3/users/4", "title": "carol"}
    assert (current_user_link(first), current_user_link(second)) == (carol, carol)
    assert users(catalog)[3:] == [(4, "carol", "carol", False, False)]
    assert current_user_link(root(trusting_client, extras={"REMOTE_USER": "bob"})) == BOB
    assert current_user_link(root(trusting_client, people.auth("bob"))) == BOB
    assert_unauthenticated(root(trusting_client))


def test_a_remote_user_header_is_not_the_environs_remote_user(trusting_client, people, catalog):
    before = users(catalog)

    # a client's "Remote-User" header arrives as HTTP_REMOTE_USER: nobody vouched for it
    assert_unauthenticated(root(trusting_client, {"Remote-User": "carol"}))
    assert users(catalog) == before


def test_remote_user_is_ignored_by_default(client, people, catalog):
    before = users(catalog)

    assert_unauthenticated(root(client, extras={"REMOTE_USER": "carol"}))
    assert current_user_link(root(client, people.auth("bob"), extras={"REMOTE_USER": "ada"})) == BOB
    assert users(catalog) == before


def test_an_empty_remote_user_leaves_the_next_plugin_its_say(settings, people, catalog):
    """An authenticating proxy may pass REMOTE_USER="" for an anonymous request: that names
    nobody, so the host's own plugin is asked next, as the hook's contract says ("Plugins are
    asked in turn until one names a login")."""
    client = falcon.testing.TestClient(
        make_app(dataclasses.replace(settings, trust_remote_user=True), HostIdentity())
    )

    response = root(client, {"X-Host-User": "bob"}, extras={"REMOTE_USER": ""})

    assert current_user_link(response) == BOB


@pytest.mark.parametrize("value, trusted", [
    (None, False), ("", False), ("0", False), ("false", False),
    ("1", True), ("true", True), ("TRUE", True),
])
def test_trust_remote_user_from_the_environment(tmp_path, value, trusted):
    environ = {"AFFIX_DATA_DIR": str(tmp_path)}
    if value is not None:
        environ["AFFIX_TRUST_REMOTE_USER"] = value

    assert Settings.from_environ(environ).trust_remote_user is trusted


def test_an_unreadable_trust_remote_user_is_refused(tmp_path):
    environ = {"AFFIX_DATA_DIR": str(tmp_path), "AFFIX_TRUST_REMOTE_USER": "maybe"}

    with pytest.raises(SettingsError) as refused:
        Settings.from_environ(environ)

    assert str(refused.value) == (
        "AFFIX_TRUST_REMOTE_USER must be 1 or 0 (true or false), not 'maybe'")
