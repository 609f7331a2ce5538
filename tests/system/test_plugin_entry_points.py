"""A real third-party distribution, affix-meetings, that pip installs: off the import path it
authorises nothing; on it, affix finds it through its entry point and its permission authorises
an upload. (Plugins registered in process: functional/test_plugins.py; the package as an operator
meets it: test_meetings_plugin.py.)"""
import subprocess
import sys

import pytest

from affix.plugins.manager import create_plugin_manager, upload_permissions
from support.plugin_packages import meetings_source_copy
from support.upload_permissions import (
    BUILTIN_PERMISSIONS, assert_accepted_and_stored, assert_refused_and_nothing_stored, client_for,
    post_upload,
)

MEETINGS_MODULE = "affix_meetings"


@pytest.fixture(scope="session")
def meetings_target(tmp_path_factory):
    """A folder into which pip has installed the affix-meetings distribution, and which is on
    no import path until a test puts it there."""
    source = meetings_source_copy(tmp_path_factory)
    target = tmp_path_factory.mktemp("site")
    result = subprocess.run(
        [sys.executable, "-m", "pip", "install", "--no-deps", "--no-build-isolation",
         "--no-index", "--target", str(target), str(source)],
        capture_output=True, text=True,
    )
    assert result.returncode == 0, f"pip failed:\n{result.stdout}\n{result.stderr}"
    return target


@pytest.fixture
def meetings_on_sys_path(monkeypatch, meetings_target):
    monkeypatch.syspath_prepend(str(meetings_target))
    yield meetings_target
    # entry-point loading imported the plugin; later tests must not find it already imported
    sys.modules.pop(MEETINGS_MODULE, None)


def test_installed_plugin_off_the_import_path_authorises_nothing(
        meetings_target, settings, people, stored):
    assert str(meetings_target) not in sys.path
    people.add("mia", permissions=["edit_meetings"])
    assert_refused_and_nothing_stored(post_upload(client_for(settings), people, "mia"), stored)


def test_installed_plugin_is_loaded_through_its_entry_point(
        meetings_on_sys_path, settings, people, stored):
    people.add("mia", permissions=["edit_meetings"])
    assert_accepted_and_stored(post_upload(client_for(settings), people, "mia"), stored)

    manager = create_plugin_manager()
    # found as the distribution declares it: its entry-point name, its project name
    plugin = manager.get_plugin("meetings")
    assert plugin is sys.modules[MEETINGS_MODULE]
    assert manager.origins["meetings"] == ("affix-meetings", "0.2.0")
    assert upload_permissions(manager) == BUILTIN_PERMISSIONS | {"edit_meetings"}
