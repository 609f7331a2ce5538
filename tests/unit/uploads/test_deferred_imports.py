"""What streaming-form-data imports and affix never uses (smart_open, aiofiles), and boto3 on a
local store, are not imported with affix; whoever uses them gets the modules themselves
(app/uploads/deferred_imports.py, storage/s3.py)."""
import importlib.metadata
import importlib.util
import json
import subprocess
import sys
import types
import uuid

import pytest

from affix.app.uploads import deferred_imports
from affix.app.uploads.deferred_imports import DeferredModule, defer_unused_imports
from support.processes import COMMAND_TIMEOUT, REPO_ROOT, environ_without_affix

WHAT_AFFIX_IMPORTS = """
import json, sys
import affix.app.cli.commands
names = ["smart_open", "aiofiles", "smart_open.smart_open_lib", "aiofiles.threadpool", "boto3",
         "botocore"]
print(json.dumps({name: type(sys.modules[name]).__name__ if name in sys.modules else None
                  for name in names}))
"""

TARGETS_THAT_USE_THEM = """
import asyncio, json, os, sys, tempfile
import affix.app.uploads.multipart
from streaming_form_data import StreamingFormDataParser
from streaming_form_data.targets import FileTarget, SmartOpenTarget

folder = tempfile.mkdtemp()
parser = StreamingFormDataParser(headers={"Content-Type": "multipart/form-data; boundary=b"})
parser.register("file", SmartOpenTarget(os.path.join(folder, "smart"), "wb"))
parser.data_received(b'--b\\r\\nContent-Disposition: form-data; name="file"; filename="a"'
                     b'\\r\\n\\r\\nthrough smart_open\\r\\n--b--\\r\\n')

async def write():
    target = FileTarget(os.path.join(folder, "async"))
    await target.astart()
    await target.adata_received(b"through aiofiles")
    await target.afinish()

asyncio.run(write())
import smart_open, aiofiles
print(json.dumps({
    "smart": open(os.path.join(folder, "smart")).read(),
    "async": open(os.path.join(folder, "async")).read(),
    "modules": [type(sys.modules[name]).__name__ for name in ("smart_open", "aiofiles")],
    "files": [bool(module.__file__) for module in (smart_open, aiofiles)],
}))
"""


def run_python(code) -> dict:
    completed = subprocess.run([sys.executable, "-c", code], cwd=REPO_ROOT, capture_output=True,
                               text=True, env=environ_without_affix(), timeout=COMMAND_TIMEOUT)
    assert completed.returncode == 0, completed.stderr
    return json.loads(completed.stdout)


@pytest.mark.system
def test_a_process_that_imports_affix_has_imported_none_of_them():
    assert run_python(WHAT_AFFIX_IMPORTS) == {
        "smart_open": "DeferredModule", "aiofiles": "DeferredModule",
        "smart_open.smart_open_lib": None, "aiofiles.threadpool": None,
        "boto3": None, "botocore": None,
    }


@pytest.mark.system
def test_streaming_form_data_s_targets_that_use_them_get_the_modules_themselves():
    assert run_python(TARGETS_THAT_USE_THEM) == {
        "smart": "through smart_open", "async": "through aiofiles",
        "modules": ["module", "module"], "files": [True, True],
    }


def test_nothing_is_deferred_on_a_version_it_was_not_tested_with(monkeypatch):
    monkeypatch.setattr(deferred_imports, "TESTED_VERSIONS", ("0.0.1",))
    modules = {}

    assert defer_unused_imports(modules) is False
    assert modules == {}


@pytest.fixture
def installed_version_tested(monkeypatch):
    """The installed streaming-form-data counts as tested, whichever it is: only what a test
    arranges decides."""
    monkeypatch.setattr(deferred_imports, "TESTED_VERSIONS",
                        (importlib.metadata.version("streaming-form-data"),))


@pytest.mark.usefixtures("installed_version_tested")
def test_nothing_is_deferred_once_streaming_form_data_s_targets_were_imported():
    targets = types.ModuleType("streaming_form_data.targets")
    modules = {"streaming_form_data.targets": targets}

    assert defer_unused_imports(modules) is False
    assert modules == {"streaming_form_data.targets": targets}


@pytest.mark.usefixtures("installed_version_tested")
def test_a_module_imported_already_keeps_its_place():
    aiofiles = types.ModuleType("aiofiles")
    modules = {"aiofiles": aiofiles}

    assert defer_unused_imports(modules) is True
    assert modules["aiofiles"] is aiofiles
    assert type(modules["smart_open"]) is DeferredModule
    assert sorted(modules) == ["aiofiles", "smart_open"]


def stand_in_for(source, tmp_path, monkeypatch):
    """A DeferredModule in sys.modules for a new module of ``source``, its name, not imported."""
    name = f"affix_deferred_probe_{uuid.uuid4().hex}"
    (tmp_path / f"{name}.py").write_text(source)
    monkeypatch.syspath_prepend(str(tmp_path))
    stand_in = DeferredModule(importlib.util.find_spec(name))
    monkeypatch.setitem(sys.modules, name, stand_in)
    return stand_in, name


def test_an_attribute_set_on_a_stand_in_is_set_on_the_module(tmp_path, monkeypatch):
    stand_in, name = stand_in_for("value = 1\n", tmp_path, monkeypatch)

    stand_in.value = 2

    module = sys.modules[name]
    assert type(module) is types.ModuleType
    assert (module.value, stand_in.value) == (2, 2)
    del stand_in.value
    assert not hasattr(module, "value")


def test_a_stand_in_answers_the_module_s_own_names_not_its_own(tmp_path, monkeypatch):
    stand_in, name = stand_in_for('"""The probe."""\n', tmp_path, monkeypatch)

    assert sys.modules[name] is stand_in
    assert stand_in.__doc__ == "The probe."
    assert stand_in.__file__ == str(tmp_path / f"{name}.py")
    assert type(sys.modules[name]) is types.ModuleType


def test_a_stand_in_whose_module_cannot_be_imported_has_no_file_and_raises_on_use(
        tmp_path, monkeypatch):
    stand_in, name = stand_in_for('raise ImportError("the probe is broken")\n', tmp_path,
                                  monkeypatch)

    assert getattr(stand_in, "__file__", None) is None
    with pytest.raises(ImportError, match="the probe is broken"):
        stand_in.anything  # noqa: B018 - the attribute's look-up is what is tested
    assert name not in sys.modules
