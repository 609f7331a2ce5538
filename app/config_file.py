"""The configuration file ``affix.toml``: the settings written once, so that cron, systemd and a
shell agree without each repeating the environment's variables.

Its keys are the settings' variables in lower case without ``AFFIX_`` (``database_url`` is
``AFFIX_DATABASE_URL``); a variable set in the environment wins over the file's key. Found by one
search order (the first file there is the one read, never several):

1. ``affix --config PATH``, else the file ``AFFIX_CONFIG`` names (either must exist);
2. ``./affix.toml``;
3. ``$XDG_CONFIG_HOME/affix/affix.toml`` (``~/.config/affix/affix.toml``);
4. ``/etc/affix/affix.toml``.
"""
import dataclasses
import difflib
import re
import tomllib
from collections.abc import Mapping
from pathlib import Path

from affix.app.xdg import xdg_folder

CONFIG_VARIABLE = "AFFIX_CONFIG"
FILE_NAME = "affix.toml"
SYSTEM_FILE = Path("/etc/affix", FILE_NAME)
PREFIX = "AFFIX_"


class ConfigFileError(ValueError):
    """The file cannot be used; the message names the file (and the key at fault)."""


@dataclasses.dataclass(frozen=True)
class ConfigFile:
    """The file the settings were read from, and the variables whose values came from it (the
    ones it holds that the environment did not override)."""

    path: Path
    variables: frozenset

    def in_its_terms(self, message: str) -> str:
        """A settings error about a value of the file, told with the file and its key in place
        of the variable; any other message as it is."""
        named = [variable for variable in self.variables
                 if re.search(rf"\b{variable}\b", message)]
        if not named:
            return message
        for variable in named:
            message = re.sub(rf"\b{variable}\b", key_of(variable), message)
        return f"{self.path}: {message}"


def key_of(variable: str) -> str:
    return variable.removeprefix(PREFIX).lower()


def search_order(environ: Mapping[str, str], cwd: Path) -> list[Path]:
    """Where a file is looked for when neither ``--config`` nor ``AFFIX_CONFIG`` names one."""
    return [cwd / FILE_NAME, xdg_folder(environ, "XDG_CONFIG_HOME", ".config") / "affix" /
            FILE_NAME, SYSTEM_FILE]


def find(environ: Mapping[str, str], named: str | None = None) -> Path | None:
    """The file to read: ``named`` (``--config``), else ``AFFIX_CONFIG``'s, else the first of
    :func:`search_order` that exists; None where there is none. A file named on purpose that
    is not there is an error, never a silent fall-back to the defaults."""
    how = "--config"
    if not named:
        named, how = environ.get(CONFIG_VARIABLE, "").strip(), CONFIG_VARIABLE
    if named:
        path = Path(named).expanduser().absolute()
        if not path.is_file():
            raise ConfigFileError(f"{path}: no such file (named by {how})")
        return path
    for candidate in search_order(environ, Path.cwd()):
        if candidate.is_file():
            return candidate
    return None


def read(path: Path, known_variables: frozenset, list_variables: frozenset) -> dict[str, str]:
    """The file's settings, each as its environment variable would hold it; a relative path
    made absolute from the file's folder, so that the data do not move with the shell. The
    settings of ``list_variables`` may be written as TOML arrays."""
    try:
        with open(path, "rb") as file:
            document = tomllib.load(file)
    except tomllib.TOMLDecodeError as error:
        raise ConfigFileError(f"{path}: not TOML: {error}") from None
    except OSError as error:
        raise ConfigFileError(f"{path}: cannot be read: {error.strerror}") from None
    known_keys = sorted(key_of(variable) for variable in known_variables)
    list_keys = {key_of(variable) for variable in list_variables}
    variables = {}
    for key, value in document.items():
        if key not in known_keys:
            raise ConfigFileError(f"{path}: {key} is none of affix's settings"
                                  f"{_hint(key, value, known_keys)}")
        variables[PREFIX + key.upper()] = _as_variable(path, key, value, key in list_keys)
    return _absolute_paths(variables, path.parent)


def _hint(key, value, known_keys) -> str:
    if isinstance(value, dict):
        return f": each setting is a top-level key ({key}_name = ..., not [{key}])"
    close = difflib.get_close_matches(key.lower(), known_keys, n=1)
    return f": did you mean {close[0]}?" if close else ""


def _as_variable(path, key, value, may_be_list) -> str:
    """A TOML value written as an environment variable would hold it."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (str, int, float)):
        return str(value)
    if may_be_list and isinstance(value, list) and all(
            isinstance(entry, str) for entry in value):
        return ",".join(value)
    wanted = ("a string or a list of strings" if may_be_list
              else "a string, a number, or true or false")
    raise ConfigFileError(f"{path}: {key} must be {wanted}, not {_toml_kind(value)}")


def _toml_kind(value) -> str:
    if isinstance(value, dict):
        return "a table"
    if isinstance(value, list):
        return "a list"
    return "a date or time"


def _absolute_paths(variables: dict[str, str], folder: Path) -> dict[str, str]:
    def absolute(place: str) -> str:
        return str(folder / place) if place and not Path(place).is_absolute() else place

    if "AFFIX_DATA_DIR" in variables:
        variables["AFFIX_DATA_DIR"] = absolute(variables["AFFIX_DATA_DIR"])
    database = variables.get("AFFIX_DATABASE_URL", "")
    if database.startswith("sqlite:///") and database != "sqlite:///:memory:":
        variables["AFFIX_DATABASE_URL"] = "sqlite:///" + absolute(
            database.removeprefix("sqlite:///"))
    storage = variables.get("AFFIX_STORAGE_URL")
    if storage is not None:
        if storage.startswith("file://"):
            variables["AFFIX_STORAGE_URL"] = "file://" + absolute(storage.removeprefix("file://"))
        elif "://" not in storage:
            variables["AFFIX_STORAGE_URL"] = absolute(storage)
    return variables
