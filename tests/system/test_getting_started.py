"""*Getting started* (docs/getting-started.md), done as a newcomer does it: its steps are the
files of docs/examples/getting-started/, which the page includes, run in order in a fresh
folder with this environment's affix on PATH: ``affix serve`` in a process of its own (the
page's first terminal), every later step in one shell (its second terminal), real curl.

One thing differs from the page: the server listens on a free port, not 8000, which a test run
beside others cannot count on; every ``127.0.0.1:8000`` of a step is that port instead."""
import hashlib
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from affix.app import open_catalog
from affix.app.settings import Settings
from support.net import HOST, free_port
from support.processes import COMMAND_TIMEOUT, REPO_ROOT, environ_without_affix
from support.servers import ADMIN_KEY_ANNOUNCEMENT, await_startup, stop_expecting_it_running
from support.state import Stored, containers, work_packages

STEPS = REPO_ROOT / "docs" / "examples" / "getting-started"
PAGE = REPO_ROOT / "docs" / "getting-started.md"
PAGE_ADDRESS = "127.0.0.1:8000"
# printed by the shell between the steps, on a line of its own
MARKER = "::step-ended-with-status"
NOTES = b"Buy milk.\n"


def commands(step) -> list:
    """The lines of a step file that are not comments."""
    return [line for line in (STEPS / step).read_text().splitlines()
            if line.strip() and not line.lstrip().startswith("#")]


def run_in_one_shell(steps, folder, port, environ) -> list:
    """Each step sourced in turn by one bash (what a step exports, the next one has): a list of
    (what the step printed, its exit status)."""
    script = "".join(
        f". {STEPS / step}\nprintf '\\n{MARKER} %s\\n' $?\n" for step in steps)
    # the port is the one difference from the page (the module's docstring says why)
    wrapper = folder.parent / "steps.sh"
    wrapper.write_text(
        f"curl() {{ command curl \"${{@//{PAGE_ADDRESS}/{HOST}:{port}}}\"; }}\n{script}")
    finished = subprocess.run(["bash", str(wrapper)], cwd=folder, env=environ,
                              capture_output=True, timeout=COMMAND_TIMEOUT)
    assert finished.stderr == b"", finished.stderr.decode(errors="replace")
    *parts, rest = re.split(rb"\n" + MARKER.encode() + rb" (\d+)\n", finished.stdout)
    assert rest == b"" and len(parts) == 2 * len(steps), finished.stdout
    return [(output, int(status)) for output, status in zip(parts[::2], parts[1::2])]


def test_every_step_of_the_page_is_a_file_it_includes_in_order():
    page = PAGE.read_text()
    included = [line.split("/")[-1].rstrip("`").strip()
                for line in page.splitlines() if "examples/getting-started/" in line]
    assert included == sorted(path.name for path in STEPS.iterdir())


@pytest.mark.sqlite_only("the page runs affix on its embedded defaults: SQLite in ./var")
def test_getting_started_runs_as_written_on_a_fresh_install(tmp_path):
    folder = tmp_path / "first-steps"
    folder.mkdir()
    bin_folder = Path(sys.executable).parent
    environ = environ_without_affix(PATH=f"{bin_folder}{os.pathsep}{os.environ['PATH']}")
    port = free_port()
    # the install step is the quick start's, which CI runs; here affix is installed already
    assert commands("1-install.sh") == [
        "python3 -m venv .venv && .venv/bin/pip install .", ". .venv/bin/activate"]
    assert commands("2-serve.sh") == ["affix serve"]
    stdout_path, stderr_path = tmp_path / "serve.stdout", tmp_path / "serve.stderr"
    with open(stdout_path, "wb") as stdout, open(stderr_path, "wb") as stderr:
        server = subprocess.Popen([bin_folder / "affix", "serve", "--bind", f"{HOST}:{port}"],
                                  cwd=folder, env=environ, stdin=subprocess.DEVNULL,
                                  stdout=stdout, stderr=stderr, start_new_session=True)
    try:
        admin_key = await_startup(server, port, stdout_path, stderr_path)
        steps = run_in_one_shell(
            ["3-people.sh", "4-upload.sh", "5-claim.sh", "6-list.sh", "7-download.sh"],
            folder, port, environ)
    finally:
        stop_expecting_it_running(server, stderr_path)

    assert stdout_path.read_text().splitlines()[:3] == [
        ADMIN_KEY_ANNOUNCEMENT, f"  {admin_key}", "Upload a file with it:"]
    people, upload, claim, listing, download = steps
    assert people == (b"created project 'demo' (id 1)\n"
                      b"created role 'member' with view_work_packages, add_work_packages, "
                      b"edit_work_packages\n"
                      b"created user 'bob' (id 2)\n"
                      b"'bob' is now 'member' in 'demo'\n", 0)
    attachment = json.loads(upload[0])
    assert upload[1] == 0
    assert (attachment["_type"], attachment["id"], attachment["fileName"],
            attachment["fileSize"], attachment["digest"]["hash"], attachment["status"]) == (
        "Attachment", 1, "notes.txt", len(NOTES), hashlib.md5(NOTES).hexdigest(), "uploaded")
    assert attachment["_links"]["author"] == {"href": "/api/v3/users/2", "title": "Bob Builder"}
    assert attachment["_links"]["container"] == {"href": None}
    work_package = json.loads(claim[0])
    assert claim[1] == 0
    assert (work_package["_type"], work_package["id"], work_package["subject"]) == (
        "WorkPackage", 1, "Shopping")
    assert work_package["_links"]["project"] == {
        "href": "/api/v3/projects/1", "title": "Demo project"}
    collection = json.loads(listing[0])
    assert listing[1] == 0
    [claimed] = collection["_embedded"]["elements"]
    assert (claimed["id"], claimed["_links"]["container"]) == (
        1, {"href": "/api/v3/work_packages/1", "title": "Shopping"})
    assert download == (NOTES, 0)

    settings = Settings.for_data_dir(folder / "var")
    catalog = open_catalog(settings)
    try:
        stored = Stored(catalog, Path(settings.storage_url))
        [(attachment_id, file_name, size, md5, key)] = stored.rows()
        assert (attachment_id, file_name, size, md5) == (
            1, "notes.txt", len(NOTES), hashlib.md5(NOTES).hexdigest())
        assert stored.files() == {key: NOTES}
        assert containers(catalog) == {1: ("WorkPackage", 1)}
        assert work_packages(catalog) == [(1, "Shopping", 1, 2)]
    finally:
        catalog.database.close()
