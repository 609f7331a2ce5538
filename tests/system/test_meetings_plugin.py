"""The example plugin package, affix-meetings, as an operator meets it: installed with pip into a
throwaway virtual environment and driven through a real ``affix serve`` on loopback.

A member whose only permission is ``edit_meetings`` uploads, claims the upload for a meeting
and uploads straight into the meeting; the package's policy refuses executables; once the
package is disabled or uninstalled, the same member may upload nothing and the meetings' routes
are gone. The package's own tests (``test_affix_meetings.py``, written with the ``affix_*``
fixtures affix ships) pass in that environment, as its author runs them."""
import contextlib
import dataclasses
import os
import shutil
import signal
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest
import requests

from affix.app.testing import basic_auth, upload_form
from affix.storage.database import open_database
from support.errors import MAY_NOT_UPLOAD, NO_SUCH_ATTACHMENT, NOT_FOUND, hal_error
from support.net import HOST, REQUEST_TIMEOUT, free_port
from support.plugin_packages import MEETINGS_SOURCE, meetings_source_copy
from support.processes import COMMAND_TIMEOUT, REPO_ROOT
from support.servers import WORKERS, await_startup, stop_expecting_it_running

# pip, a virtual environment, real servers
pytestmark = pytest.mark.system

DISTRIBUTION = "affix-meetings"
VERSION = "0.2.0"
MEETINGS_LISTING = (
    f"meetings ({DISTRIBUTION} {VERSION}): affix_container_types, affix_permissions, "
    "affix_upload_permissions, affix_validate_upload"
)
MEETING_TITLE = "Sprint review"
NO_EXECUTABLES = hal_error(
    "PropertyConstraintViolation", "Executable files are not accepted.", attribute="file"
)
# without the plugin, editing meetings authorises no upload
MISSING_PERMISSION = hal_error("MissingPermission", MAY_NOT_UPLOAD)
NO_ROUTE = hal_error("NotFound", NOT_FOUND)
NO_ATTACHMENT = hal_error("NotFound", NO_SUCH_ATTACHMENT)
AGENDA = b"1. Welcome\n2. Demo of the new upload form\n3. Retrospective\n"
MINUTES = b"Decided: ship the upload form on Friday.\n"
# the first bytes of a Windows program (a DOS header): libmagic calls them application/x-dosexec
DOS_PROGRAM = b"MZ\x90\x00\x03\x00\x00\x00\x04\x00\x00\x00\xff\xff\x00\x00" + bytes(48)
# the first start makes the admin, user 1; carol is the next user of a fresh database
CAROL_ID = 2
# a whole pytest run of the package's tests, which a loaded machine may slow to a crawl
PLUGIN_TESTS_TIMEOUT = 300


# --- the throwaway environment -----------------------------------------------------------------

def clean_environ(**settings) -> dict:
    """This process's environment without affix's or pip's settings, plus ``settings``."""
    environ = {name: value for name, value in os.environ.items()
               if not name.startswith(("AFFIX_", "PIP_")) and name != "PYTHONPATH"}
    # no user site-packages (it could hold another affix-meetings); pip asks no index anything
    environ.update(PYTHONNOUSERSITE="1", PIP_DISABLE_PIP_VERSION_CHECK="1", **settings)
    return environ


def run(command, environ, check=True, cwd=REPO_ROOT,
        timeout=COMMAND_TIMEOUT) -> subprocess.CompletedProcess:
    """``command``'s result; a command still running after ``timeout`` fails the test with what
    it printed and, being Python, the stack of each of its threads (faulthandler's answer to the
    SIGABRT it gets instead of a silent kill)."""
    with subprocess.Popen(command, cwd=cwd, env={**environ, "PYTHONFAULTHANDLER": "1"},
                          stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE, text=True) as process:
        try:
            stdout, stderr = process.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            process.send_signal(signal.SIGABRT)
            stdout, stderr = process.communicate()
            pytest.fail(f"{command} still ran after {timeout} s:\n{stdout}\n{stderr}")
    result = subprocess.CompletedProcess(command, process.returncode, stdout, stderr)
    if check:
        assert result.returncode == 0, (
            f"{command} exited with {result.returncode}:\n{result.stdout}\n{result.stderr}")
    return result


class PluginEnvironment:
    """A virtual environment of its own into which pip really installs affix-meetings, and
    from which it really uninstalls it.

    affix, its dependencies and pip itself come from this test run's interpreter: a ``.pth``
    file in the new environment adds this interpreter's site-packages, so nothing is
    downloaded and the server runs the affix these tests run.
    """

    def __init__(self, root: Path, source: Path):
        self.root = root
        self.source = source
        self.python = str(root / "bin" / "python")
        self.installed = False
        # asked of the new interpreter, not guessed
        self.site_packages = Path(run(
            [self.python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
            clean_environ(),
        ).stdout.strip())

    @classmethod
    def create(cls, root: Path, source: Path) -> "PluginEnvironment":
        run([sys.executable, "-m", "venv", "--without-pip", str(root)], clean_environ())
        environment = cls(root, source)
        paths = sysconfig.get_paths()
        borrowed = dict.fromkeys([paths["purelib"], paths["platlib"]])
        # site dirs, not plain path entries: their own .pth files run too, and an editable
        # install of affix is found through one
        (environment.site_packages / "affix-under-test.pth").write_text("".join(
            f"import site; site.addsitedir({path!r})\n" for path in borrowed))
        return environment

    def pip(self, *arguments) -> subprocess.CompletedProcess:
        return run([self.python, "-m", "pip", *arguments], clean_environ())

    def install(self):
        """Install the package unless it is installed (tests share one environment)."""
        if not self.installed:
            # no network: pip builds the local folder with the setuptools it already has
            self.pip("install", "--no-index", "--no-deps", "--no-build-isolation",
                     str(self.source))
            self.installed = True

    def uninstall(self) -> str:
        self.installed = False
        return self.pip("uninstall", "-y", DISTRIBUTION).stdout

    def package_files(self) -> list:
        """What the package put into the environment's site-packages."""
        return sorted(path.name for path in self.site_packages.iterdir()
                      if path.name.startswith("affix_meetings"))

    def affix(self, site, *arguments, check=True, **settings) -> subprocess.CompletedProcess:
        """``affix <arguments>`` run by this environment's interpreter on ``site``."""
        return run([self.python, "-m", "affix.app.cli.commands", *arguments],
                   clean_environ(**site.environ, **settings), check=check)


@pytest.fixture(scope="module")
def plugin_env(tmp_path_factory):
    source = meetings_source_copy(tmp_path_factory)
    return PluginEnvironment.create(tmp_path_factory.mktemp("venv"), source)


@pytest.fixture
def installed(plugin_env):
    plugin_env.install()
    return plugin_env


@dataclasses.dataclass
class Site:
    """One affix installation: its data dir, its database, and the AFFIX_* settings naming
    both."""
    data_dir: Path
    database_url: str
    environ: dict


@pytest.fixture
def site(tmp_path, databases):
    data_dir = tmp_path / "data"
    return Site(data_dir, databases.settings(data_dir).database_url, databases.environ(data_dir))


# --- the server ---------------------------------------------------------------------------------

@dataclasses.dataclass
class Server:
    port: int
    # the key that proved the server answers: the admin's on the first start, else the one given
    api_key: str
    stdout_path: Path

    def url(self, path) -> str:
        return f"http://{HOST}:{self.port}{path}"

    def stdout(self) -> str:
        return self.stdout_path.read_text()


@contextlib.contextmanager
def serving(environment, site, api_key=None, **settings):
    """``affix serve`` by ``environment``'s interpreter on ``site``, until the block ends.

    Without ``api_key`` this must be the first start, which announces the admin's key."""
    port = free_port()
    stdout_path = site.data_dir.parent / f"serve-{port}.stdout"
    stderr_path = site.data_dir.parent / f"serve-{port}.stderr"
    with open(stdout_path, "wb") as stdout, open(stderr_path, "wb") as stderr:
        process = subprocess.Popen(
            [environment.python, "-m", "affix.app.cli.commands", "serve",
             "--bind", f"{HOST}:{port}", "--workers", str(WORKERS), "--threads", "4"],
            cwd=REPO_ROOT, env=clean_environ(**site.environ, **settings),
            stdin=subprocess.DEVNULL, stdout=stdout, stderr=stderr, start_new_session=True,
        )
    try:
        key = await_startup(process, port, stdout_path, stderr_path, api_key)
        yield Server(port, key, stdout_path)
    finally:
        stop_expecting_it_running(process, stderr_path)


# --- the data: a member who may only edit meetings, and a meeting --------------------------------

@dataclasses.dataclass
class Deployment:
    site: Site
    carol_key: str
    meeting_id: int

    def stored(self):
        """(attachment rows, every file under the blob folder with its bytes, staging
        included)."""
        with opened_database(self.site) as database:
            rows = [tuple(row) for row in database.execute_sql(
                "SELECT id, file_name, author_id, container_type, container_id, storage_key "
                "FROM attachments ORDER BY id"
            )]
        blob_root = self.site.data_dir / "blobs"
        files = {path.relative_to(blob_root).as_posix(): path.read_bytes()
                 for path in sorted(blob_root.rglob("*")) if path.is_file()}
        return rows, files


@contextlib.contextmanager
def opened_database(site):
    """The site's database, as SQL sees it: no affix model, no migration."""
    database = open_database(site.database_url)
    try:
        with database.connection_context():
            yield database
    finally:
        database.close_all()


def set_up_meeting_editor(environment, site) -> Deployment:
    """carol, whose one role in 'demo' holds edit_meetings alone, and a meeting in 'demo'; made
    with the CLI of the plugin's environment, after the first start made the admin."""
    def affix(*arguments):
        return environment.affix(site, *arguments).stdout

    assert affix("user", "add", "carol") == f"created user 'carol' (id {CAROL_ID})\n"
    assert affix("project", "add", "demo") == "created project 'demo' (id 1)\n"
    # accepted only because the installed plugin makes the name known
    assert affix("role", "add", "meeting-editor", "edit_meetings") == (
        "created role 'meeting-editor' with edit_meetings\n")
    assert affix("member", "add", "carol", "demo", "meeting-editor") == (
        "'carol' is now 'meeting-editor' in 'demo'\n")
    [carol_key] = affix("apikey", "create", "carol").splitlines()

    with opened_database(site) as database:
        # the plugin's own table, as it made it in affix's database
        columns = [column.name for column in database.get_columns("affix_meetings")]
        assert columns == ["id", "project_id", "title"]
        with database.atomic():
            [(meeting_id,)] = database.execute_sql(
                "INSERT INTO affix_meetings (project_id, title) "
                f"SELECT id, {database.param} FROM projects WHERE identifier = 'demo' "
                "RETURNING id", (MEETING_TITLE,),
            ).fetchall()
    return Deployment(site, carol_key, meeting_id)


# --- talking to the server ---------------------------------------------------------------------

def auth(key) -> dict:
    return {"Authorization": basic_auth(key)}


def meeting_attachments(meeting_id) -> str:
    return f"/api/v3/meetings/{meeting_id}/attachments"


def upload(server, key, file_name, content, path="/api/v3/attachments"):
    body, content_type = upload_form(file_name, content)
    return requests.post(server.url(path), data=body,
                         headers={**auth(key), "Content-Type": content_type},
                         timeout=REQUEST_TIMEOUT)


def claim(server, key, meeting_id, attachment_ids):
    document = {"_links": {"attachments": [
        {"href": f"/api/v3/attachments/{attachment_id}"} for attachment_id in attachment_ids]}}
    # requests sends json= as application/json
    return requests.post(server.url(meeting_attachments(meeting_id)), json=document,
                         headers=auth(key), timeout=REQUEST_TIMEOUT)


def get(server, key, path):
    return requests.get(server.url(path), headers=auth(key), timeout=REQUEST_TIMEOUT)


def assert_hal(response, status) -> dict:
    assert response.status_code == status, response.text
    assert response.headers["Content-Type"] == "application/hal+json"
    return response.json()


def assert_error(response, status, body):
    assert assert_hal(response, status) == body


def assert_attachment(document, file_name, container_link) -> int:
    assert document["_type"] == "Attachment"
    assert document["fileName"] == file_name
    assert document["_links"]["author"] == {"href": f"/api/v3/users/{CAROL_ID}", "title": "carol"}
    assert document["_links"]["container"] == container_link
    return document["id"]


def meeting_link(meeting_id) -> dict:
    return {"href": f"/api/v3/meetings/{meeting_id}", "title": MEETING_TITLE}


def assert_collection(response, meeting_id, attachment_ids):
    document = assert_hal(response, 200)
    assert document["_type"] == "Collection"
    assert (document["total"], document["count"]) == (len(attachment_ids), len(attachment_ids))
    assert document["_links"] == {"self": {"href": meeting_attachments(meeting_id)}}
    elements = document["_embedded"]["elements"]
    assert [element["id"] for element in elements] == attachment_ids
    for element in elements:
        assert element["_links"]["container"] == meeting_link(meeting_id)


def upload_and_claim(server, deployment) -> int:
    """carol's containerless upload, claimed for the meeting; its id."""
    key, meeting_id = deployment.carol_key, deployment.meeting_id
    attachment_id = assert_attachment(
        assert_hal(upload(server, key, "agenda.txt", AGENDA), 200), "agenda.txt", {"href": None})
    assert_collection(claim(server, key, meeting_id, [attachment_id]), meeting_id,
                      [attachment_id])
    return attachment_id


def assert_plugin_gone(server, deployment, admin_key):
    """What a member of meetings is left with when affix runs without the plugin."""
    before = deployment.stored()
    key, meeting_id = deployment.carol_key, deployment.meeting_id
    # refused before a byte of the body is read, and nothing is kept
    assert_error(upload(server, key, "agenda.txt", AGENDA), 403, MISSING_PERMISSION)
    assert deployment.stored() == before
    for who in (key, admin_key):
        assert_error(get(server, who, meeting_attachments(meeting_id)), 404, NO_ROUTE)
    assert_error(upload(server, key, "minutes.txt", MINUTES, meeting_attachments(meeting_id)),
                 404, NO_ROUTE)
    assert deployment.stored() == before


def assert_permission_unknown(environment, site, **settings):
    refused = environment.affix(site, "role", "add", "meeting-viewer", "view_meetings",
                                check=False, **settings)
    assert refused.returncode == 1
    assert refused.stderr.startswith("affix: error: unknown permission 'view_meetings'; ")


def listed_plugins(environment, site, **settings) -> list:
    return environment.affix(site, "plugins", **settings).stdout.splitlines()


# --- the tests ---------------------------------------------------------------------------------

def test_pip_installs_the_package_and_affix_lists_it_with_its_hooks(installed, site):
    assert installed.package_files() == ["affix_meetings-0.2.0.dist-info", "affix_meetings.py"]
    assert MEETINGS_LISTING in listed_plugins(installed, site)


def test_the_packages_own_tests_pass_with_the_fixtures_affix_ships(installed, tmp_path):
    # the test module alone, away from the package's source: affix_meetings is imported from
    # where pip installed it, and the affix_* fixtures come from affix's pytest11 entry point
    tests = tmp_path / "plugin-tests"
    tests.mkdir()
    shutil.copy(MEETINGS_SOURCE / "test_affix_meetings.py", tests)
    environ = {name: value for name, value in clean_environ().items()
               if not name.startswith("PYTEST_")}

    # a temporary folder of its own: pytest's own numbered ones (under /tmp/pytest-of-<user>)
    # are shared with the run this test is part of, and each session prunes older ones as it ends
    result = run([installed.python, "-m", "pytest", "-p", "no:cacheprovider", "-n", "0",
                  "--basetemp", str(tmp_path / "plugin-basetemp"), "-q",
                  "test_affix_meetings.py"], environ, check=False, cwd=tests,
                 timeout=PLUGIN_TESTS_TIMEOUT)

    assert result.returncode == 0, result.stdout + result.stderr
    assert "3 passed" in result.stdout, result.stdout


def test_a_meeting_editor_uploads_into_a_meeting_and_no_executable_is_kept(installed, site):
    with serving(installed, site) as server:
        deployment = set_up_meeting_editor(installed, site)
        key, meeting_id = deployment.carol_key, deployment.meeting_id

        claimed_id = upload_and_claim(server, deployment)
        assert_attachment(assert_hal(get(server, key, f"/api/v3/attachments/{claimed_id}"), 200),
                          "agenda.txt", meeting_link(meeting_id))
        direct_id = assert_attachment(
            assert_hal(upload(server, key, "minutes.txt", MINUTES,
                              meeting_attachments(meeting_id)), 200),
            "minutes.txt", meeting_link(meeting_id))
        assert_collection(get(server, key, meeting_attachments(meeting_id)), meeting_id,
                          [claimed_id, direct_id])
        # claiming again what the meeting already has changes nothing
        assert_collection(claim(server, key, meeting_id, [claimed_id]), meeting_id,
                          [claimed_id, direct_id])

        rows, files = deployment.stored()
        assert [row[:5] for row in rows] == [
            (claimed_id, "agenda.txt", CAROL_ID, "Meeting", meeting_id),
            (direct_id, "minutes.txt", CAROL_ID, "Meeting", meeting_id),
        ]
        assert files == {rows[0][5]: AGENDA, rows[1][5]: MINUTES}

        # an executable by its name, and one by its bytes whatever its name, with or without a
        # container: refused by the policy, nothing stored, the earlier attachments untouched
        for file_name, path in (
                ("setup.exe", "/api/v3/attachments"),
                ("SETUP.BAT", meeting_attachments(meeting_id)),
                ("minutes.txt", "/api/v3/attachments"),
                ("agenda.pdf", meeting_attachments(meeting_id))):
            content = DOS_PROGRAM if file_name.endswith((".txt", ".pdf")) else b"@echo off\n"
            assert_error(upload(server, key, file_name, content, path), 422, NO_EXECUTABLES)
            assert deployment.stored() == (rows, files)
        assert_collection(get(server, key, meeting_attachments(meeting_id)), meeting_id,
                          [claimed_id, direct_id])
        # a meeting that does not exist, also by an id beyond 64 bits: the same 404 as no route
        for missing in (meeting_id + 1, 2**63, 2**64):
            assert_error(get(server, key, meeting_attachments(missing)), 404, NO_ROUTE)


@pytest.mark.one_database("pip installing and removing a plugin package")
def test_a_disabled_plugin_authorises_nothing(installed, site):
    disabled = {"AFFIX_DISABLE_PLUGINS": "meetings"}
    with serving(installed, site, **disabled) as server:
        # the data is made with the plugin enabled: its permission is known then
        deployment = set_up_meeting_editor(installed, site)
        assert_plugin_gone(server, deployment, server.api_key)
    assert MEETINGS_LISTING not in listed_plugins(installed, site, **disabled)
    assert_permission_unknown(installed, site, **disabled)


@pytest.mark.one_database("pip installing and removing a plugin package")
def test_after_pip_uninstalls_the_plugin_the_same_member_may_upload_nothing(
        installed, site):
    with serving(installed, site) as server:
        admin_key = server.api_key
        deployment = set_up_meeting_editor(installed, site)
        claimed_id = upload_and_claim(server, deployment)
        kept_id = assert_attachment(
            assert_hal(upload(server, deployment.carol_key, "notes.txt", MINUTES), 200),
            "notes.txt", {"href": None})

    assert f"Successfully uninstalled {DISTRIBUTION}-{VERSION}" in installed.uninstall()
    assert installed.package_files() == []
    assert not any(line.startswith("meetings ") for line in listed_plugins(installed, site))
    assert_permission_unknown(installed, site)

    with serving(installed, site, api_key=deployment.carol_key) as server:
        # not the first start: no admin is made, no key announced
        assert server.stdout() == ""
        assert_plugin_gone(server, deployment, admin_key)
        key = deployment.carol_key
        # her upload without a container is still hers
        assert_attachment(assert_hal(get(server, key, f"/api/v3/attachments/{kept_id}"), 200),
                          "notes.txt", {"href": None})
        # one claimed for a meeting has no container affix knows of: nobody may see it, as if
        # its meeting were gone
        for who in (key, admin_key):
            assert_error(get(server, who, f"/api/v3/attachments/{claimed_id}"), 404,
                         NO_ATTACHMENT)
