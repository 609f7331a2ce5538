"""The ``affix`` command, run in this process as the console script would run it.

The ``environ`` fixture (registered by ``tests/conftest.py``) is the AFFIX_* environment of a
command on the test's data dir and database, which ``affix migrate`` made."""
import io
import shlex

import pytest

from affix.app.cli.commands import main

# what ``affix role add`` lists as known when no plugin adds any
BUILT_IN_PERMISSIONS = (
    "add_work_package_attachments, add_work_packages, delete_work_packages, edit_messages, "
    "edit_wiki_pages, edit_work_packages, view_work_packages"
)

# how the message of a command that found no database ends
POINT_ELSEWHERE = ("run affix migrate (or affix serve) there first, or set AFFIX_DATA_DIR or "
                   "AFFIX_DATABASE_URL (or data_dir or database_url in affix.toml) to the one "
                   "affix serve uses")


@pytest.fixture
def environ(tmp_path, databases):
    """The environment of commands on a database made as an operator makes it: only serve and
    migrate make one."""
    environ = databases.environ(tmp_path / "data")
    run_ok(environ, "migrate")
    return environ


def affix(environ, *argv):
    """Run one command as the console script would; its exit status and its stdout."""
    out = io.StringIO()
    status = main(list(argv), environ=environ, out=out)
    return status, out.getvalue()


def run_ok(environ, *argv):
    """Run a command that must succeed; what it printed."""
    status, printed = affix(environ, *argv)
    assert status == 0, printed
    return printed


def assert_refused(capsys, environ, argv, message, status=1):
    """Run a command that must fail with exit status ``status`` (1: the command refused; 2: a
    setting, or what the settings point at, is unusable) and the one line ``message``."""
    assert affix(environ, *argv) == (status, "")
    assert capsys.readouterr().err == f"affix: error: {message}\n"


def assert_usage_error(capsys, environ, argv, line):
    """Run a command whose flags argparse refuses: exit status 2 and the one line ``line``."""
    with pytest.raises(SystemExit) as stopped:
        affix(environ, *argv)
    assert stopped.value.code == 2
    assert capsys.readouterr() == ("", line + "\n")


def transcript(path) -> list:
    """The commands of a console transcript of the docs (``$ affix ...`` lines), each with what
    it printed, the lines up to the next command: [(argv, output)]."""
    steps: list = []
    for line in path.read_text().splitlines(keepends=True):
        if line.startswith("$ "):
            program, *argv = shlex.split(line[2:])
            assert program == "affix", line
            steps.append((argv, ""))
        else:
            argv, output = steps[-1]
            steps[-1] = (argv, output + line)
    return steps
