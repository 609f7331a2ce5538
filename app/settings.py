"""Configuration: environment variables read once into one settings object."""
import dataclasses
import os
import re
from pathlib import Path

from app.allowlist import parse_allowlist

DEFAULT_MAX_ATTACHMENT_SIZE = 5 * 1024 * 1024
DEFAULT_GRACE_PERIOD_MINUTES = 180


class SettingsError(ValueError):
    """A setting has a value affix cannot use; the message names the variable."""


def _positive_int(environ, name, default) -> int:
    raw = environ.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise SettingsError(f"{name} must be a whole number, not {raw!r}") from None
    if value <= 0:
        raise SettingsError(f"{name} must be greater than 0, not {raw!r}")
    return value


def _flag(environ, name) -> bool:
    raw = environ.get(name, "").strip().lower()
    if raw in ("", "0", "false", "no", "off"):
        return False
    if raw in ("1", "true", "yes", "on"):
        return True
    raise SettingsError(f"{name} must be 1 or 0 (true or false), not {raw!r}")


@dataclasses.dataclass(frozen=True)
class Settings:
    data_dir: Path
    database_url: str
    storage_url: str
    max_attachment_size: int = DEFAULT_MAX_ATTACHMENT_SIZE
    grace_period_minutes: int = DEFAULT_GRACE_PERIOD_MINUTES
    # exact MIME types and *.ext patterns; empty allows every file
    allowlist: tuple = ()
    # entry-point names of installed plugins not to load
    disabled_plugins: tuple = ()
    # believe the REMOTE_USER of the WSGI environ (behind an authenticating proxy only)
    trust_remote_user: bool = False

    @classmethod
    def for_data_dir(cls, data_dir, **overrides) -> "Settings":
        """Embedded defaults: an SQLite file and a blob folder inside ``data_dir``."""
        data_dir = Path(data_dir).absolute()
        values = {
            "database_url": f"sqlite:///{data_dir / 'affix.sqlite3'}",
            "storage_url": str(data_dir / "blobs"),
        }
        values.update(overrides)
        return cls(data_dir=data_dir, **values)

    @classmethod
    def from_environ(cls, environ=None) -> "Settings":
        environ = os.environ if environ is None else environ
        overrides = {
            "max_attachment_size": _positive_int(
                environ, "AFFIX_MAX_ATTACHMENT_SIZE", DEFAULT_MAX_ATTACHMENT_SIZE
            ),
            "grace_period_minutes": _positive_int(
                environ, "AFFIX_GRACE_PERIOD", DEFAULT_GRACE_PERIOD_MINUTES
            ),
        }
        overrides["trust_remote_user"] = _flag(environ, "AFFIX_TRUST_REMOTE_USER")
        overrides["disabled_plugins"] = tuple(
            name for name in re.split(r"[,\s]+", environ.get("AFFIX_DISABLE_PLUGINS", "")) if name
        )
        try:
            overrides["allowlist"] = parse_allowlist(environ.get("AFFIX_ALLOWLIST", ""))
        except ValueError as error:
            raise SettingsError(f"AFFIX_ALLOWLIST: {error}") from None
        for field, variable in (
            ("database_url", "AFFIX_DATABASE_URL"),
            ("storage_url", "AFFIX_STORAGE_URL"),
        ):
            if environ.get(variable):
                overrides[field] = environ[variable]
        return cls.for_data_dir(environ.get("AFFIX_DATA_DIR") or "var", **overrides)
