"""The config file affix.toml (issue #25, trap 1): cron, systemd and a shell, each started from
another folder, find one file and agree on one database; a bad file is one line naming the file
and the key, exit status 2, and nothing made."""
import io
from pathlib import Path

import pytest

from affix.app import open_catalog
from affix.app.cli.commands import main
from affix.app.composition import compose
from affix.app.config_file import SYSTEM_FILE
from affix.app.settings import load_settings
from support.cli import POINT_ELSEWHERE, affix, assert_refused, assert_usage_error, run_ok
from support.content import MiB
from support.migrations import APPLIED_ALL
from support.processes import REPO_ROOT

# the example of docs/guides/configuration-file.md
EXAMPLE = REPO_ROOT / "docs" / "examples" / "affix.toml"

SIZE_FORMS = "bytes (5242880), or K, M, G with or without iB (5M, 5MiB: 1024-based)"


def write_config(folder, text):
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "affix.toml"
    path.write_text(text)
    return path


@pytest.fixture
def elsewhere(tmp_path, monkeypatch):
    """A working folder that holds no affix.toml: a cron job's, a systemd unit's."""
    folder = tmp_path / "elsewhere"
    folder.mkdir()
    monkeypatch.chdir(folder)
    return folder


def test_every_way_of_finding_the_file_reaches_one_database(tmp_path, monkeypatch, databases):
    config = write_config(tmp_path / "etc", 'data_dir = "data"\n' + (
        f'database_url = "{databases.url(tmp_path / "etc" / "data")}"\n'
        if databases.kind == "postgresql" else ""))
    cwd = tmp_path / "cron"
    cwd.mkdir()
    monkeypatch.chdir(cwd)
    assert run_ok({}, "--config", str(config), "migrate") == APPLIED_ALL
    assert run_ok({"AFFIX_CONFIG": str(config)}, "user", "add", "carol") == (
        "created user 'carol' (id 1)\n")
    monkeypatch.chdir(config.parent)
    assert run_ok({}, "user", "add", "dave") == "created user 'dave' (id 2)\n"
    monkeypatch.chdir(cwd)
    xdg = tmp_path / "xdg"
    (xdg / "affix").mkdir(parents=True)
    (xdg / "affix" / "affix.toml").write_text(config.read_text().replace(
        '"data"', f'"{config.parent / "data"}"'))
    assert run_ok({"XDG_CONFIG_HOME": str(xdg)}, "user", "add", "erin") == (
        "created user 'erin' (id 3)\n")

    settings = load_settings({}, str(config))
    assert settings.data_dir == config.parent / "data"
    catalog = open_catalog(settings)
    with catalog.database.connection_context():
        logins = [user.login for user in catalog.User.select().order_by(catalog.User.id)]
    catalog.database.close()
    assert logins == ["carol", "dave", "erin"]
    # nothing was made where the commands ran
    assert list(cwd.iterdir()) == []


def test_a_command_on_the_files_database_never_made_says_where_it_looked(
        tmp_path, elsewhere, capsys):
    config = write_config(tmp_path / "etc", 'data_dir = "data"\n')
    assert_refused(capsys, {"AFFIX_CONFIG": str(config)}, ["user", "add", "carol"],
                   f"no database at {config.parent}/data/affix.sqlite3 (data_dir of {config}): "
                   f"{POINT_ELSEWHERE}", status=2)
    assert sorted(path.name for path in config.parent.iterdir()) == ["affix.toml"]
    assert list(elsewhere.iterdir()) == []


def test_the_search_order_takes_the_first_file_there(tmp_path, elsewhere):
    named = write_config(tmp_path / "named", "grace_period = 1\n")
    variable = write_config(tmp_path / "variable", "grace_period = 2\n")
    write_config(elsewhere, "grace_period = 3\n")
    xdg = tmp_path / "xdg"
    write_config(xdg / "affix", "grace_period = 4\n")

    def found(environ, config=None):
        settings = load_settings(environ, config)
        return settings.grace_period_minutes, settings.config_file.path

    environ = {"AFFIX_CONFIG": str(variable), "XDG_CONFIG_HOME": str(xdg)}
    assert found(environ, str(named)) == (1, named)
    assert found(environ) == (2, variable)
    assert found({"XDG_CONFIG_HOME": str(xdg)}) == (3, elsewhere / "affix.toml")
    (elsewhere / "affix.toml").unlink()
    assert found({"XDG_CONFIG_HOME": str(xdg)}) == (4, xdg / "affix" / "affix.toml")
    (xdg / "affix" / "affix.toml").unlink()
    settings = load_settings({"XDG_CONFIG_HOME": str(xdg)})
    # the last place, which a test does not write
    assert settings.config_file is None or settings.config_file.path == SYSTEM_FILE


def test_the_environment_wins_over_the_file(tmp_path, elsewhere):
    config = write_config(tmp_path, 'max_attachment_size = "1M"\ngrace_period = 5\n'
                                    'cors_origins = ["https://a.example", "https://b.example"]\n'
                                    'trust_remote_user = true\n')
    settings = load_settings({"AFFIX_CONFIG": str(config), "AFFIX_MAX_ATTACHMENT_SIZE": "2M",
                              # an empty variable is an unset one: the file's value stands
                              "AFFIX_GRACE_PERIOD": ""})
    assert (settings.max_attachment_size, settings.grace_period_minutes) == (2 * MiB, 5)
    assert settings.cors_origins == ("https://a.example", "https://b.example")
    assert settings.trust_remote_user is True
    assert settings.config_file.variables == frozenset({
        "AFFIX_GRACE_PERIOD", "AFFIX_CORS_ORIGINS", "AFFIX_TRUST_REMOTE_USER"})


def test_relative_paths_of_the_file_are_relative_to_its_folder(tmp_path, elsewhere):
    folder = tmp_path / "etc" / "affix"
    config = write_config(folder, 'data_dir = "var"\ndatabase_url = "sqlite:///db/affix.sqlite3"\n'
                                  'storage_url = "file://../blobs"\n')
    settings = load_settings({}, str(config))
    assert settings.data_dir == folder / "var"
    assert settings.database_url == f"sqlite:///{folder}/db/affix.sqlite3"
    assert settings.storage_url == f"file://{folder}/../blobs"
    write_config(folder, 'storage_url = "blobs"\ndatabase_url = "sqlite:////srv/affix.sqlite3"\n')
    settings = load_settings({}, str(config))
    assert (settings.storage_url, settings.database_url) == (
        f"{folder}/blobs", "sqlite:////srv/affix.sqlite3")
    # a variable's relative path is relative to the shell's folder, as it always was
    assert load_settings({"AFFIX_DATA_DIR": "var"}, str(config)).data_dir == elsewhere / "var"


def test_serve_hands_the_files_settings_to_the_server(tmp_path, elsewhere):
    config = write_config(tmp_path / "etc", 'data_dir = "data"\nmax_attachment_size = "7M"\n')
    started = []

    class RecordingServer:
        """Stands in for gunicorn, whose workers are forked with the settings given here."""

        def __init__(self, settings, options, metrics_folder=None):
            started.append(settings)

        def run(self):
            pass

    assert main(["serve"], environ={"AFFIX_CONFIG": str(config)}, out=io.StringIO(),
                server=RecordingServer) == 0
    [settings] = started
    assert settings == load_settings({}, str(config))
    assert (settings.data_dir, settings.max_attachment_size) == (tmp_path / "etc" / "data",
                                                                 7 * MiB)
    assert list(elsewhere.iterdir()) == []


@pytest.mark.parametrize("text, message", [
    ('max_attachment_size = "5MB"\n',
     f"max_attachment_size must be a size: {SIZE_FORMS}; not '5MB'"),
    ("max_atachment_size = 1\n",
     "max_atachment_size is none of affix's settings: did you mean max_attachment_size?"),
    ("AFFIX_GRACE_PERIOD = 1\n",
     "AFFIX_GRACE_PERIOD is none of affix's settings: did you mean grace_period?"),
    ('[s3]\nregion = "eu-west-1"\n',
     "s3 is none of affix's settings: each setting is a top-level key (s3_name = ..., not [s3])"),
    ("grace_period = 0\n", "grace_period must be greater than 0, not '0'"),
    ('trust_remote_user = "maybe"\n',
     "trust_remote_user must be 1 or 0 (true or false), not 'maybe'"),
    ('max_json_size = ["1M"]\n',
     "max_json_size must be a string, a number, or true or false, not a list"),
    ('cors_origins = ["https://a.example", 3]\n',
     "cors_origins must be a string or a list of strings, not a list"),
    ('database_url = "mysql://affix:secret@db/affix"\n',
     "database_url must be sqlite:///PATH or postgresql://USER@HOST:PORT/NAME, not 'mysql'"),
    ("database_url = \n", "not TOML: Invalid value (at line 2, column 16)"),
])
def test_a_bad_file_is_one_line_naming_the_file_and_the_key(
        tmp_path, elsewhere, capsys, text, message):
    config = write_config(tmp_path / "etc", 'data_dir = "data"\n' + text)
    for argv in (["serve"], ["user", "add", "carol"]):
        assert_refused(capsys, {"AFFIX_CONFIG": str(config)}, argv, f"{config}: {message}",
                       status=2)
    assert sorted(path.name for path in config.parent.iterdir()) == ["affix.toml"]
    assert list(elsewhere.iterdir()) == []


def test_a_file_named_that_is_not_there_is_refused(tmp_path, elsewhere, capsys):
    missing = tmp_path / "etc" / "affix.toml"
    assert_refused(capsys, {}, ["--config", str(missing), "cleanup"],
                   f"{missing}: no such file (named by --config)", status=2)
    assert_refused(capsys, {"AFFIX_CONFIG": "affix.toml"}, ["cleanup"],
                   f"{elsewhere}/affix.toml: no such file (named by AFFIX_CONFIG)", status=2)
    assert list(elsewhere.iterdir()) == []


def test_affix_config_is_no_unknown_variable(tmp_path, elsewhere, capsys):
    config = write_config(tmp_path / "etc", 'data_dir = "data"\n')
    assert affix({"AFFIX_CONFIG": str(config)}, "migrate") == (0, APPLIED_ALL)
    assert capsys.readouterr().err == ""


def test_config_after_the_command_says_where_it_goes(tmp_path, elsewhere, capsys):
    config = write_config(tmp_path / "etc", 'data_dir = "data"\n')
    for argv, unrecognized in ((["cleanup", "--config", str(config)], f"--config {config}"),
                               (["user", "list", f"--config={config}"], f"--config={config}")):
        assert_usage_error(capsys, {}, argv, (
            f"affix: error: unrecognized arguments: {unrecognized}; "
            "--config goes before the command: affix --config PATH COMMAND ..."))
    assert list(elsewhere.iterdir()) == []


def test_config_needs_a_path(capsys):
    assert_usage_error(capsys, {}, ["--config"],
                       "affix: error: argument --config: expected one argument")


def test_the_app_made_without_settings_reads_the_file_too(tmp_path, elsewhere, monkeypatch):
    config = write_config(tmp_path / "etc", 'data_dir = "data"\ngrace_period = 9\n')
    monkeypatch.setenv("AFFIX_CONFIG", str(config))
    assert compose().settings == load_settings({}, str(config))
    assert compose().settings.grace_period_minutes == 9


def test_the_documented_example_reads_as_the_guide_says(elsewhere):
    settings = load_settings({}, str(EXAMPLE))
    assert (settings.data_dir, settings.database_url, settings.storage_url) == (
        Path("/var/lib/affix"), "sqlite:////var/lib/affix/affix.sqlite3",
        "/var/lib/affix/blobs")
    assert (settings.max_attachment_size, settings.grace_period_minutes) == (20 * MiB, 180)
    assert settings.allowlist == ("image/png", "image/jpeg", "application/pdf", "*.txt")
    assert settings.cors_origins == ("https://openproject.example.com",)
    assert settings.log_format == "json"
    # an operator's variable wins over the file
    assert load_settings({"AFFIX_LOG_FORMAT": "text"}, str(EXAMPLE)).log_format == "text"


def test_the_object_storage_guide_s_settings_load_as_written():
    # docs/guides/object-storage-setup.md includes the file
    settings = load_settings({}, str(REPO_ROOT / "docs" / "examples" / "storage" / "s3.toml"))

    assert settings.storage_url == "s3://affix-attachments/blobs"
    assert (settings.s3.endpoint_url, settings.s3.region, settings.s3.addressing_style,
            settings.s3.access_key_id, settings.s3.secret_access_key) == (
        "https://minio.example.com:9000", "eu-central-1", "path", "…", "…")
