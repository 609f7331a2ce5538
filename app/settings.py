"""Configuration: environment variables, over the config file's keys, read once into one
settings object (:func:`load_settings`)."""
import dataclasses
import difflib
import importlib.util
import os
import re
from pathlib import Path
from collections.abc import Iterator, Mapping
from typing import Any

from affix.app import config_file
from affix.app.config_file import ConfigFile
from affix.app.sizes import SIZE_FORMS, parse_size
from affix.app.uploads.allowlist import parse_allowlist
from affix.plugins.clamav import ScanOptions, scan_options
from affix.storage.database import MISSING_PSYCOPG2, POSTGRES_SCHEMES
from affix.storage.s3 import (
    ADDRESSING_STYLES, MAX_URL_EXPIRY, MISSING_BOTO3, S3Options, parse_s3_url,
)
from affix.storage.s3_staging import MAX_DIRECT_UPLOAD_SIZE

DEFAULT_MAX_ATTACHMENT_SIZE = 5 * 1024 * 1024
DEFAULT_GRACE_PERIOD_MINUTES = 180
# a JSON request body (a work package, a claim) is small: a claim of the most attachments one
# request may claim takes about 50 KiB
DEFAULT_MAX_JSON_SIZE = 1024 * 1024
# what OpenProject gives its direct-upload forms since advisory GHSA-c5j2-2mfg-49h7: 4 hours
DEFAULT_DIRECT_UPLOAD_EXPIRY = 4 * 3600
# a part URL is asked for just before its part is sent: a quarter of an hour sends 8 MiB over
# a link of 10 KB/s, and a URL that leaks is of no use for long
DEFAULT_DIRECT_PART_URL_EXPIRY = 900
# resumable uploads, unless AFFIX_TUS_MAX_SIZE says otherwise: the size of the largest files
# people struggle to send in one request (long videos, disk images), still one that finishing
# (reading the file back once for its digest and the inspectors) does within a PATCH's lease;
# never more than every upload's limit
DEFAULT_TUS_MAX_SIZE = 10 * 1024 ** 3
# a day: an upload interrupted in the evening can be resumed the next morning
DEFAULT_TUS_EXPIRY = 24 * 3600
LOG_FORMATS = ("text", "json")
# AFFIX_CORS_ORIGINS: every origin, or a list of scheme://host[:port]
ANY_ORIGIN = "*"
_ORIGIN = re.compile(
    r"(?P<scheme>https?)://"
    r"(?P<host>[a-z0-9](?:[a-z0-9-]*[a-z0-9])?(?:\.[a-z0-9](?:[a-z0-9-]*[a-z0-9])?)*"
    r"|\[[0-9a-f:.]+\])"
    r"(?::(?P<port>[1-9][0-9]{0,4}))?"
)
_DEFAULT_PORTS = {"http": "80", "https": "443"}


class SettingsError(ValueError):
    """A setting has a value affix cannot use; the message names the variable."""


def parse_origins(text: str) -> tuple:
    """Origins of a comma- or space-separated list, lower-cased; ``("*",)`` for any origin.
    ValueError names the first entry a browser would never send as its ``Origin``."""
    entries = tuple(entry.lower() for entry in re.split(r"[,\s]+", text.strip()) if entry)
    if ANY_ORIGIN in entries:
        if len(entries) > 1:
            raise ValueError("'*' allows every origin: it stands alone, not in a list")
        return entries
    for entry in entries:
        match = _ORIGIN.fullmatch(entry)
        if match is None:
            raise ValueError(
                f"{entry!r} is not an origin: scheme://host[:port] with http or https, "
                "no path, not even a trailing /")
        if match["port"] is not None and (
                int(match["port"]) > 65535 or match["port"] == _DEFAULT_PORTS[match["scheme"]]):
            raise ValueError(
                f"{entry!r} has a port a browser never sends: leave out the default port, "
                "and a port is at most 65535")
    return entries


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


def _size(environ, name, default, *, zero_allowed=False) -> int:
    """A size setting, written as every size is (:mod:`affix.app.sizes`)."""
    raw = environ.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = parse_size(raw)
    except ValueError:
        raise SettingsError(f"{name} must be a size: {SIZE_FORMS}; not {raw!r}") from None
    if value == 0 and not zero_allowed:
        raise SettingsError(f"{name} must be greater than 0, not {raw!r}")
    return value


def _flag(environ, name, default=False) -> bool:
    raw = environ.get(name, "").strip().lower()
    if raw == "":
        return default
    if raw in ("0", "false", "no", "off"):
        return False
    if raw in ("1", "true", "yes", "on"):
        return True
    raise SettingsError(f"{name} must be 1 or 0 (true or false), not {raw!r}")


def _choice(environ, name, choices) -> str:
    raw = environ.get(name, "").strip().lower() or choices[0]
    if raw not in choices:
        raise SettingsError(f"{name} must be one of {', '.join(choices)}, not {raw!r}")
    return raw


def _metrics_bind(environ):
    """HOST:PORT of the metrics listener, or None (no metrics)."""
    raw = environ.get("AFFIX_METRICS_BIND", "").strip()
    if not raw:
        return None
    host, _, port = raw.rpartition(":")
    if not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise SettingsError(f"AFFIX_METRICS_BIND must be HOST:PORT (127.0.0.1:9464), not {raw!r}")
    return raw


def metrics_port(bind) -> int:
    return int(bind.rpartition(":")[2])


def _check_storage_url(url):
    """Checked now rather than when the first worker opens the store."""
    if url is None or "://" not in url or url.startswith("file://"):
        return
    if not url.startswith("s3://"):
        raise SettingsError(
            f"AFFIX_STORAGE_URL must be a folder, a file:// URL or s3://bucket/prefix, "
            f"not {url!r}")
    try:
        parse_s3_url(url)
    except ValueError as error:
        raise SettingsError(f"AFFIX_STORAGE_URL: {error}") from None
    if importlib.util.find_spec("boto3") is None:
        raise SettingsError(f"AFFIX_STORAGE_URL is an S3 URL: {MISSING_BOTO3}")


def _check_database_url(url):
    """Checked now rather than with a traceback where a command first opens the database.
    Only the scheme is repeated: the rest of the URL may hold a password."""
    if url.startswith(POSTGRES_SCHEMES):
        if importlib.util.find_spec("psycopg2") is None:
            raise SettingsError(f"AFFIX_DATABASE_URL is a PostgreSQL URL: {MISSING_PSYCOPG2}")
    elif not url.startswith("sqlite:///"):
        scheme = url.partition(":")[0] if ":" in url else url
        raise SettingsError(f"AFFIX_DATABASE_URL must be sqlite:///PATH or "
                            f"postgresql://USER@HOST:PORT/NAME, not {scheme!r}")


def _check_database_outside_storage(settings):
    """A blob folder that holds the SQLite database would offer the database's files to
    whatever manages the folder's files: refused."""
    folder = settings.storage_url.removeprefix("file://")
    if not settings.database_url.startswith("sqlite:///") or "://" in folder:
        return
    database = Path(settings.database_url[len("sqlite:///"):]).resolve()
    storage = Path(folder).resolve()
    if database.is_relative_to(storage):
        raise SettingsError(
            f"AFFIX_STORAGE_URL must not hold the database: {storage} holds {database}")


def _s3_options(environ) -> S3Options:
    def value(name):
        return environ.get(name, "").strip() or None

    endpoint_url = value("AFFIX_S3_ENDPOINT_URL")
    if endpoint_url is not None and not re.fullmatch(r"https?://[^/\s]+/?", endpoint_url):
        raise SettingsError(
            f"AFFIX_S3_ENDPOINT_URL must be http://host[:port] or https://host[:port], "
            f"not {endpoint_url!r}")
    access_key_id = value("AFFIX_S3_ACCESS_KEY_ID")
    secret_access_key = value("AFFIX_S3_SECRET_ACCESS_KEY")
    if (access_key_id is None) != (secret_access_key is None):
        raise SettingsError("AFFIX_S3_ACCESS_KEY_ID and AFFIX_S3_SECRET_ACCESS_KEY go together: "
                            "set both, or neither to use boto3's own credential chain")
    addressing_style = value("AFFIX_S3_ADDRESSING_STYLE")
    if addressing_style is not None and addressing_style not in ADDRESSING_STYLES:
        raise SettingsError(f"AFFIX_S3_ADDRESSING_STYLE must be one of "
                            f"{', '.join(ADDRESSING_STYLES)}, not {addressing_style!r}")
    url_expiry = _positive_int(environ, "AFFIX_S3_URL_EXPIRY", S3Options.url_expiry)
    if url_expiry > MAX_URL_EXPIRY:
        raise SettingsError(f"AFFIX_S3_URL_EXPIRY must be at most {MAX_URL_EXPIRY} seconds "
                            f"(seven days, what S3 signs for), not {url_expiry}")
    return S3Options(
        endpoint_url=endpoint_url, region=value("AFFIX_S3_REGION"),
        access_key_id=access_key_id, secret_access_key=secret_access_key,
        addressing_style=addressing_style, url_expiry=url_expiry,
    )


def _url_lifetime(environ, name, default) -> int:
    """Seconds a pre-signed URL lives, from ``name``: S3 signs for at most seven days."""
    seconds = _positive_int(environ, name, default)
    if seconds > MAX_URL_EXPIRY:
        raise SettingsError(f"{name} must be at most {MAX_URL_EXPIRY} seconds (seven days, "
                            f"what S3 signs for), not {seconds}")
    return seconds


def _direct_upload_settings(environ) -> dict:
    values = {
        "direct_upload_expiry": _url_lifetime(
            environ, "AFFIX_DIRECT_UPLOAD_EXPIRY", DEFAULT_DIRECT_UPLOAD_EXPIRY),
        "direct_part_url_expiry": _url_lifetime(
            environ, "AFFIX_DIRECT_PART_URL_EXPIRY", DEFAULT_DIRECT_PART_URL_EXPIRY),
    }
    if environ.get("AFFIX_MAX_DIRECT_UPLOAD_SIZE"):
        size = _size(environ, "AFFIX_MAX_DIRECT_UPLOAD_SIZE", None)
        if size > MAX_DIRECT_UPLOAD_SIZE:
            raise SettingsError(f"AFFIX_MAX_DIRECT_UPLOAD_SIZE must be at most "
                                f"{MAX_DIRECT_UPLOAD_SIZE} bytes (5 GiB, what S3 takes in one "
                                f"POST and copies in one request), not {size}")
        values["max_direct_upload_size"] = size
    return values


class _NamesRead(Mapping[str, str]):
    """An empty environment that notes every variable asked of it."""

    def __init__(self) -> None:
        self.names: set[str] = set()

    def __getitem__(self, name: str) -> str:
        self.names.add(name)
        raise KeyError(name)

    def __iter__(self) -> Iterator[str]:
        return iter(())

    def __len__(self) -> int:
        return 0


def known_variables() -> frozenset:
    """Every variable the settings read: :meth:`Settings.from_environ` asks an empty
    environment for each one (only a bad value stops it early), so the settings' own
    definition is the list, and a new setting is known the day it is added."""
    asked = _NamesRead()
    Settings.from_environ(asked)
    return frozenset(asked.names)


def list_variables() -> frozenset:
    """The variables whose settings are lists (``setting(..., "list", ...)``)."""
    return frozenset(field.metadata["variable"] for field in dataclasses.fields(Settings)
                     if field.metadata.get("form") == "list")


def unknown_variables(environ, also=()) -> list:
    """A warning for each ``AFFIX_*`` variable of ``environ`` that neither the settings nor
    ``also`` know, naming the closest known one: a misspelt setting is otherwise silently
    ignored. ``AFFIX_TEST_*`` are the test suite's own."""
    known = known_variables() | set(also)
    warnings = []
    for name in sorted(environ):
        if not name.startswith("AFFIX_") or name in known or name.startswith("AFFIX_TEST_"):
            continue
        # compared without the prefix that every name shares, which would make any two alike
        close = difflib.get_close_matches(name.removeprefix("AFFIX_"),
                                          [each.removeprefix("AFFIX_") for each in known], n=1)
        # not "ignored": a plugin may read variables of its own
        hint = f"did you mean AFFIX_{close[0]}?" if close else "a plugin's own?"
        warnings.append(f"{name} is none of affix's settings: {hint}")
    return warnings


def setting(variable, form, meaning, default=dataclasses.MISSING, *, unset=None):
    """A field of :class:`Settings` and the environment variable it is read from: ``form`` is
    what the variable holds, ``meaning`` what it does, ``unset`` what leaving it unset means
    when the field's default does not say it. The settings reference is written from these."""
    metadata = {"variable": variable, "form": form, "meaning": meaning}
    if unset is not None:
        metadata["unset"] = unset
    return dataclasses.field(default=default, metadata=metadata)


@dataclasses.dataclass(frozen=True)
class Settings:
    """affix's configuration: a field for each ``AFFIX_*`` variable (``setting()`` names it),
    read from the environment by :meth:`from_environ`, or given by a host that embeds affix."""

    data_dir: Path = setting(
        "AFFIX_DATA_DIR", "path", "where the default database and blob folder live",
        unset="`./var`")
    database_url: str = setting(
        "AFFIX_DATABASE_URL", "URL",
        "the metadata database: `sqlite:///PATH` or "
        "`postgresql://USER:PASSWORD@HOST:PORT/DATABASE`",
        unset="`sqlite:///$AFFIX_DATA_DIR/affix.sqlite3`")
    storage_url: str = setting(
        "AFFIX_STORAGE_URL", "path or URL",
        "where blobs go: a folder (a path or `file://` URL), or `s3://bucket/prefix`",
        unset="`$AFFIX_DATA_DIR/blobs`")
    max_attachment_size: int = setting(
        "AFFIX_MAX_ATTACHMENT_SIZE", "size",
        "the largest file accepted, whichever way it comes (multipart, direct, tus)",
        DEFAULT_MAX_ATTACHMENT_SIZE)
    grace_period_minutes: int = setting(
        "AFFIX_GRACE_PERIOD", "whole number",
        "minutes an unclaimed upload lives before `affix cleanup` removes it",
        DEFAULT_GRACE_PERIOD_MINUTES)
    max_json_size: int = setting(
        "AFFIX_MAX_JSON_SIZE", "size",
        "the largest JSON request body (a work package, a claim); a larger one is refused with "
        "413 before it is read", DEFAULT_MAX_JSON_SIZE)
    allowlist: tuple = setting(
        "AFFIX_ALLOWLIST", "list",
        "which files may be uploaded: MIME types (`image/png`) matched against the type found in "
        "the bytes, and `*.ext` patterns matched against the file name; empty allows every file",
        ())
    disabled_plugins: tuple = setting(
        "AFFIX_DISABLE_PLUGINS", "list", "entry-point names of installed plugins not to load", ())
    trust_remote_user: bool = setting(
        "AFFIX_TRUST_REMOTE_USER", "flag",
        "believe the WSGI `REMOTE_USER` (behind an authenticating proxy only)", False)
    # how to reach the bucket when storage_url is s3://bucket/prefix
    s3: S3Options = S3Options()
    cors_origins: tuple = setting(
        "AFFIX_CORS_ORIGINS", "list",
        "the origins whose web pages may call affix: `scheme://host[:port]` as a browser sends "
        "it in `Origin`, or `*` alone for every origin; empty allows none", ())
    max_direct_upload_size: int | None = setting(
        "AFFIX_MAX_DIRECT_UPLOAD_SIZE", "size",
        "the largest file a direct upload to S3 may declare, never above "
        "`AFFIX_MAX_ATTACHMENT_SIZE`", None,
        unset=f"`AFFIX_MAX_ATTACHMENT_SIZE`, at most {MAX_DIRECT_UPLOAD_SIZE}")
    direct_upload_expiry: int = setting(
        "AFFIX_DIRECT_UPLOAD_EXPIRY", "whole number",
        "seconds a direct-upload form stays valid; `affix cleanup` removes uploads not completed "
        f"by then (at most {MAX_URL_EXPIRY})", DEFAULT_DIRECT_UPLOAD_EXPIRY)
    direct_part_url_expiry: int = setting(
        "AFFIX_DIRECT_PART_URL_EXPIRY", "whole number",
        "seconds a part URL of a direct upload in parts stays valid (at most "
        f"{MAX_URL_EXPIRY})", DEFAULT_DIRECT_PART_URL_EXPIRY)
    tus_max_size: int | None = setting(
        "AFFIX_TUS_MAX_SIZE", "size",
        "the largest resumable (tus) upload (`Tus-Max-Size`), never above "
        "`AFFIX_MAX_ATTACHMENT_SIZE`; `0` turns tus off", None,
        unset=f"`AFFIX_MAX_ATTACHMENT_SIZE`, at most {DEFAULT_TUS_MAX_SIZE}")

    # max_attachment_size is the largest file accepted, whichever way it comes: a way's own
    # setting may lower it, never raise it
    @property
    def direct_upload_limit(self) -> int:
        """The size limit of direct uploads: their own, at most every upload's, and at most
        what S3 takes in one POST."""
        own = (MAX_DIRECT_UPLOAD_SIZE if self.max_direct_upload_size is None
               else self.max_direct_upload_size)
        return min(own, self.max_attachment_size)

    @property
    def tus_limit(self) -> int:
        """The size limit of resumable uploads (0: tus is off): their own, at most every
        upload's."""
        own = DEFAULT_TUS_MAX_SIZE if self.tus_max_size is None else self.tus_max_size
        return min(own, self.max_attachment_size)

    def lowered_limits(self) -> list:
        """What to tell an operator of a way's own size limit set above every upload's: it is
        lowered to that."""
        return [f"{variable}={size} is above AFFIX_MAX_ATTACHMENT_SIZE, the largest file "
                f"accepted: {way} take at most {self.max_attachment_size} bytes"
                for variable, size, way in (
                    ("AFFIX_MAX_DIRECT_UPLOAD_SIZE", self.max_direct_upload_size,
                     "direct uploads"),
                    ("AFFIX_TUS_MAX_SIZE", self.tus_max_size, "resumable (tus) uploads"))
                if size is not None and size > self.max_attachment_size]
    tus_expiry: int = setting(
        "AFFIX_TUS_EXPIRY", "whole number",
        "seconds an unfinished resumable upload lives after its last `PATCH` (`Upload-Expires`)",
        DEFAULT_TUS_EXPIRY)
    # virus scanning: off, stream or after, and where clamd is
    scan: ScanOptions = ScanOptions()
    metrics_bind: str | None = setting(
        "AFFIX_METRICS_BIND", "HOST:PORT",
        "where `affix serve` answers `GET /metrics`, and nothing else", None,
        unset="no metrics")
    log_format: str = setting(
        "AFFIX_LOG_FORMAT", " or ".join(LOG_FORMATS),
        "`text` for a terminal, `json` for a log collector (one object a line)", LOG_FORMATS[0])
    access_log: bool = setting(
        "AFFIX_ACCESS_LOG", "flag",
        "one line per request in the server's log (`0` when the proxy logs them)", True)
    # the affix.toml that some of these came from (load_settings), or None
    config_file: ConfigFile | None = None

    @classmethod
    def for_data_dir(cls, data_dir, **overrides) -> "Settings":
        """Embedded defaults: an SQLite file and a blob folder inside ``data_dir``."""
        data_dir = Path(data_dir).absolute()
        values: dict[str, Any] = {
            "database_url": f"sqlite:///{data_dir / 'affix.sqlite3'}",
            "storage_url": str(data_dir / "blobs"),
        }
        values.update(overrides)
        return cls(data_dir=data_dir, **values)

    @classmethod
    def from_environ(cls, environ=None) -> "Settings":
        environ = os.environ if environ is None else environ
        overrides: dict[str, Any] = {
            "max_attachment_size": _size(
                environ, "AFFIX_MAX_ATTACHMENT_SIZE", DEFAULT_MAX_ATTACHMENT_SIZE
            ),
            "grace_period_minutes": _positive_int(
                environ, "AFFIX_GRACE_PERIOD", DEFAULT_GRACE_PERIOD_MINUTES
            ),
            "max_json_size": _size(environ, "AFFIX_MAX_JSON_SIZE", DEFAULT_MAX_JSON_SIZE),
        }
        overrides.update(_direct_upload_settings(environ))
        overrides["tus_max_size"] = _size(environ, "AFFIX_TUS_MAX_SIZE", None, zero_allowed=True)
        overrides["tus_expiry"] = _positive_int(environ, "AFFIX_TUS_EXPIRY", DEFAULT_TUS_EXPIRY)
        overrides["trust_remote_user"] = _flag(environ, "AFFIX_TRUST_REMOTE_USER")
        overrides["metrics_bind"] = _metrics_bind(environ)
        overrides["log_format"] = _choice(environ, "AFFIX_LOG_FORMAT", LOG_FORMATS)
        overrides["access_log"] = _flag(environ, "AFFIX_ACCESS_LOG", default=True)
        overrides["disabled_plugins"] = tuple(
            name for name in re.split(r"[,\s]+", environ.get("AFFIX_DISABLE_PLUGINS", "")) if name
        )
        try:
            overrides["allowlist"] = parse_allowlist(environ.get("AFFIX_ALLOWLIST", ""))
        except ValueError as error:
            raise SettingsError(f"AFFIX_ALLOWLIST: {error}") from None
        try:
            overrides["cors_origins"] = parse_origins(environ.get("AFFIX_CORS_ORIGINS", ""))
        except ValueError as error:
            raise SettingsError(f"AFFIX_CORS_ORIGINS: {error}") from None
        for field, variable in (
            ("database_url", "AFFIX_DATABASE_URL"),
            ("storage_url", "AFFIX_STORAGE_URL"),
        ):
            if environ.get(variable):
                overrides[field] = environ[variable]
        _check_storage_url(overrides.get("storage_url"))
        overrides["s3"] = _s3_options(environ)
        try:
            overrides["scan"] = scan_options(environ)
        except ValueError as error:
            raise SettingsError(str(error)) from None
        settings = cls.for_data_dir(environ.get("AFFIX_DATA_DIR") or "var", **overrides)
        _check_database_url(settings.database_url)
        _check_database_outside_storage(settings)
        return settings


def load_settings(environ=None, config=None) -> Settings:
    """The one place affix's settings come from, for every command, the served app and
    gunicorn's workers alike: ``environ``'s variables (``os.environ`` when None) over the keys
    of the config file (``config``: ``--config``'s path; else found as
    :mod:`affix.app.config_file` says). A bad value of the file is told with the file and the
    key, as a bad variable is with the variable."""
    environ = os.environ if environ is None else environ
    try:
        path = config_file.find(environ, config)
        from_file = {} if path is None else config_file.read(path, known_variables(),
                                                             list_variables())
    except config_file.ConfigFileError as error:
        raise SettingsError(str(error)) from None
    if path is None:
        return Settings.from_environ(environ)
    # an empty variable is an unset one, as everywhere in the settings
    used = {name: value for name, value in from_file.items() if not environ.get(name)}
    source = ConfigFile(path, frozenset(used))
    try:
        settings = Settings.from_environ({**environ, **used})
    except SettingsError as error:
        raise SettingsError(source.in_its_terms(str(error))) from None
    return dataclasses.replace(settings, config_file=source)
