"""What streaming-form-data imports and affix never uses (smart_open, aiofiles), and boto3 on a
local store, are not imported with affix; whoever uses them gets the modules themselves
(app/uploads/deferred_imports.py, storage/s3.py). In process; in processes of their own:
system/test_importing.py."""
import importlib.metadata
import importlib.util
import sys
import types
import uuid

import pytest

from affix.app.uploads.deferred_imports import DeferredModule, defer_unused_imports


def test_nothing_is_deferred_on_a_version_it_was_not_tested_with():
    modules = {}

    assert defer_unused_imports(modules, tested_versions=("0.0.1",)) is False
    assert modules == {}


# the installed streaming-form-data counts as tested, whichever it is: only what a test
# arranges decides
ONLY_THE_INSTALLED_VERSION = (importlib.metadata.version("streaming-form-data"),)


def test_nothing_is_deferred_once_streaming_form_data_s_targets_were_imported():
    targets = types.ModuleType("streaming_form_data.targets")
    modules = {"streaming_form_data.targets": targets}

    assert defer_unused_imports(modules, tested_versions=ONLY_THE_INSTALLED_VERSION) is False
    assert modules == {"streaming_form_data.targets": targets}


def test_a_module_imported_already_keeps_its_place():
    aiofiles = types.ModuleType("aiofiles")
    modules = {"aiofiles": aiofiles}

    assert defer_unused_imports(modules, tested_versions=ONLY_THE_INSTALLED_VERSION) is True
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
