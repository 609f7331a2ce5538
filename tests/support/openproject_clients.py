"""Real OpenProject clients from PyPI, run as their users run them, against a real server.

- openproject-cli: its console script (installed by the ``test`` extra), configured by its own
  ``auth login`` into a config file of the test's, with its other settings from the environment.
- pyopenproject: its services called by ``pyopenproject_driver.py`` in a virtual environment of
  its own. pyopenproject 0.7.4 (the newest) pins ``requests~=2.25.1`` and ``PyYAML~=5.3.1``,
  which the test environment cannot hold beside schemathesis, moto and requests>=2.31; a user
  installs it with those pins, and so do we, next to the test environment::

      .venv/bin/python -m tests.support.openproject_clients

  makes ``.venv/clients/pyopenproject`` (``CLIENT_ENVIRONMENTS`` of the running interpreter).
"""
import json
import subprocess
import sys
import venv
from pathlib import Path

import pytest

from .processes import COMMAND_TIMEOUT, REPO_ROOT, environ_without_affix

PYOPENPROJECT = "pyopenproject==0.7.4"
CLIENT_ENVIRONMENTS = Path(sys.prefix) / "clients"
PYOPENPROJECT_ENVIRONMENT = CLIENT_ENVIRONMENTS / "pyopenproject"
PYOPENPROJECT_PYTHON = PYOPENPROJECT_ENVIRONMENT / "bin" / "python"
PYOPENPROJECT_DRIVER = Path(__file__).with_name("pyopenproject_driver.py")
# the console script of the test extra's openproject-cli, next to this interpreter's
OPENPROJECT_CLI = Path(sys.executable).with_name("openproject-cli")
# what pip may take to install pyopenproject and build PyYAML 5.3.1
INSTALL_TIMEOUT = 600


def make_pyopenproject_environment():
    """pyopenproject with the dependencies it pins, in a virtual environment of its own."""
    venv.create(PYOPENPROJECT_ENVIRONMENT, with_pip=True, clear=True)
    subprocess.run([PYOPENPROJECT_PYTHON, "-m", "pip", "install", "--quiet", PYOPENPROJECT],
                   check=True, timeout=INSTALL_TIMEOUT)


def installed_pyopenproject() -> str | None:
    """The requirement pyopenproject's environment satisfies, None if it has no pyopenproject."""
    if not PYOPENPROJECT_PYTHON.exists():
        return None
    shown = subprocess.run(
        [PYOPENPROJECT_PYTHON, "-c",
         "import importlib.metadata as m; print(m.version('pyopenproject'))"],
        capture_output=True, text=True, timeout=COMMAND_TIMEOUT)
    return f"pyopenproject=={shown.stdout.strip()}" if shown.returncode == 0 else None


class Model(dict):
    """A pyopenproject model object (``WorkPackage``, ``Attachment``, ...) with these fields."""

    def __init__(self, name, **fields):
        super().__init__(model=name, fields=fields)


def filters(*triples) -> dict:
    """pyopenproject ``Filter`` objects: (name, operator, values) each."""
    return {"filters": [list(triple) for triple in triples]}


class PyOpenProject:
    """pyopenproject's ``OpenProject(url, api_key)``; each call runs in a process of its own."""

    def __init__(self, url, api_key):
        self.url = url
        self.api_key = api_key

    def call(self, service, method, *args) -> dict:
        """``OpenProject(...).get_<service>_service().<method>(*args)``: ``{"returned": ...}``,
        or ``{"raised": message, "body": the server's answer}`` for pyopenproject's
        BusinessError."""
        done = subprocess.run(
            # -I: the driver's folder (support/, whose http.py would shadow the standard
            # library's) is not put on sys.path
            [PYOPENPROJECT_PYTHON, "-I", PYOPENPROJECT_DRIVER],
            input=json.dumps({"url": self.url, "api_key": self.api_key, "service": service,
                              "method": method, "args": list(args)}),
            capture_output=True, text=True, timeout=COMMAND_TIMEOUT, cwd=REPO_ROOT,
            env=environ_without_affix())
        assert done.returncode == 0, done.stderr
        return json.loads(done.stdout)

    def returned(self, service, method, *args):
        """What the call returned; the test fails if pyopenproject raised."""
        answer = self.call(service, method, *args)
        assert "returned" in answer, answer
        return answer["returned"]


class OpenProjectCli:
    """``openproject-cli`` as a user runs it: logged in once with ``auth login`` (the token in
    the config file, as on a machine without a keyring), then one command a process."""

    def __init__(self, home: Path, url, api_key):
        home.mkdir(parents=True, exist_ok=True)
        self.environ = environ_without_affix(
            HOME=str(home), OPENPROJECT_CONFIG=str(home / "config.yaml"),
            # no keyring of this machine is asked for a token, nor told one
            PYTHON_KEYRING_BACKEND="keyring.backends.fail.Keyring",
            # a failure shows at once: it retries idempotent requests on 5xx otherwise
            OPENPROJECT_RETRIES="0",
        )
        for name in ("OPENPROJECT_URL", "OPENPROJECT_TOKEN"):
            self.environ.pop(name, None)
        login = self.run("auth", "login", "--url", url, "--with-token", "--insecure-storage",
                         input=api_key + "\n")
        assert login.returncode == 0, login.stderr

    def run(self, *argv, input=None) -> subprocess.CompletedProcess:
        return subprocess.run([OPENPROJECT_CLI, *argv], input=input, capture_output=True,
                              text=True, timeout=COMMAND_TIMEOUT, env=self.environ,
                              cwd=self.environ["HOME"])

    def json(self, *argv):
        """The JSON a command printed; the test fails if it failed."""
        done = self.run(*argv)
        assert done.returncode == 0, f"exit {done.returncode}: {done.stderr}"
        return json.loads(done.stdout)


def require_pyopenproject_environment():
    """Fails the test, saying how to make it, unless pyopenproject's environment is made."""
    found = installed_pyopenproject()
    if found != PYOPENPROJECT:
        pytest.fail(f"pyopenproject's environment holds {found or 'nothing'}, not {PYOPENPROJECT}:"
                    f" make it with {sys.executable} -m tests.support.openproject_clients")


if __name__ == "__main__":
    make_pyopenproject_environment()
    print(f"{installed_pyopenproject()} in {PYOPENPROJECT_ENVIRONMENT}")
