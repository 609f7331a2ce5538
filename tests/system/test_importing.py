"""affix imported and installed in processes of their own: importing it creates, opens and
connects nothing, and imports none of what streaming-form-data imports and affix never uses
(smart_open, aiofiles), nor boto3 on a local store, while whoever uses those gets the modules
themselves; pip installs no top-level name but ``affix``. (Deferring the imports, in process:
unit/uploads/test_deferred_imports.py.)"""
import json
import os
import shutil
import subprocess
import sys

from support.processes import COMMAND_TIMEOUT, REPO_ROOT, environ_without_affix

# for the subprocesses that import affix or pip-install it
SUBPROCESS_TIMEOUT = 30


# --- importing affix opens nothing -----------------------------------------------------------

IMPORT_PROBE = """
import socket, sqlite3
opened = []
sqlite3.connect = lambda *args, **kwargs: opened.append(("sqlite3", args))
socket.socket.connect = lambda self, address: opened.append(("socket", address))
import affix, affix.app.cli.commands, affix.app.attachments.resources, affix.plugins.hookspecs
import affix.storage.models, affix.storage.stores, affix.storage.database
print(opened)
"""


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


# --- what affix defers importing -------------------------------------------------------------

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


def test_a_process_that_imports_affix_has_imported_none_of_them():
    assert run_python(WHAT_AFFIX_IMPORTS) == {
        "smart_open": "DeferredModule", "aiofiles": "DeferredModule",
        "smart_open.smart_open_lib": None, "aiofiles.threadpool": None,
        "boto3": None, "botocore": None,
    }


def test_streaming_form_data_s_targets_that_use_them_get_the_modules_themselves():
    assert run_python(TARGETS_THAT_USE_THEM) == {
        "smart": "through smart_open", "async": "through aiofiles",
        "modules": ["module", "module"], "files": [True, True],
    }


# --- installing affix ------------------------------------------------------------------------

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
