"""S3-compatible storage with no S3 server at all: the AFFIX_S3_* settings, and what the sweep of
abandoned multipart uploads decides on scripted S3 answers. system/test_s3.py has the rest,
against moto's S3 server."""
import datetime
import importlib
import sys

import pytest
from botocore.stub import Stubber

from affix.app.settings import Settings, SettingsError
from affix.storage.s3 import S3BlobStore, S3Options, s3_client


def stubbed_store(now):
    """A store whose S3 answers are scripted (moto dates every multipart upload in 2010)."""
    store = S3BlobStore("s3://bucket/prefix", S3Options(
        endpoint_url="http://127.0.0.1:9", region="us-east-1", access_key_id="key",
        secret_access_key="secret", addressing_style="path"), clock=lambda: now)
    return store, Stubber(store.client)


def test_the_sweep_leaves_uploads_younger_than_the_safe_age_alone():
    now = datetime.datetime(2026, 3, 1, 12, 0, 0)
    store, stubber = stubbed_store(now)
    initiated = {
        "two days": now - datetime.timedelta(days=2),
        "a day and a second": now - datetime.timedelta(days=1, seconds=1),
        "exactly a day": now - datetime.timedelta(days=1),
        "an hour": now - datetime.timedelta(hours=1),
    }
    stubber.add_response(
        "list_multipart_uploads",
        {"Uploads": [
            {"Key": f"prefix/{age}", "UploadId": age,
             "Initiated": moment.replace(tzinfo=datetime.UTC)}
            for age, moment in initiated.items()
        ]},
        {"Bucket": "bucket", "Prefix": "prefix/", "MaxUploads": 1000},
    )
    for age in ("two days", "a day and a second"):
        stubber.add_response(
            "abort_multipart_upload", {},
            {"Bucket": "bucket", "Key": f"prefix/{age}", "UploadId": age})
    with stubber:
        assert store.sweep_staging() == 2
    stubber.assert_no_pending_responses()


def test_the_sweep_counts_no_upload_that_finished_meanwhile():
    now = datetime.datetime(2026, 3, 1, 12, 0, 0)
    store, stubber = stubbed_store(now)
    stubber.add_response(
        "list_multipart_uploads",
        {"Uploads": [{"Key": "prefix/a", "UploadId": "a",
                      "Initiated": datetime.datetime(2026, 1, 1, tzinfo=datetime.UTC)}]},
        {"Bucket": "bucket", "Prefix": "prefix/", "MaxUploads": 1000},
    )
    stubber.add_client_error("abort_multipart_upload", "NoSuchUpload", http_status_code=404)
    with stubber:
        assert store.sweep_staging() == 0


# --- settings ----------------------------------------------------------------------------------

def test_s3_settings_come_from_the_environment():
    settings = Settings.from_environ({
        "AFFIX_STORAGE_URL": "s3://bucket/some/prefix",
        "AFFIX_S3_ENDPOINT_URL": "https://s3.example.org:9000",
        "AFFIX_S3_REGION": "eu-central-1",
        "AFFIX_S3_ACCESS_KEY_ID": "id",
        "AFFIX_S3_SECRET_ACCESS_KEY": "very secret",
        "AFFIX_S3_ADDRESSING_STYLE": "path",
        "AFFIX_S3_URL_EXPIRY": "600",
    })
    assert settings.storage_url == "s3://bucket/some/prefix"
    assert settings.s3 == S3Options(
        endpoint_url="https://s3.example.org:9000", region="eu-central-1", access_key_id="id",
        secret_access_key="very secret", addressing_style="path", url_expiry=600)
    assert "very secret" not in repr(settings)


def test_unset_s3_settings_leave_boto3_its_own_chain():
    assert Settings.from_environ({"AFFIX_STORAGE_URL": "s3://bucket"}).s3 == S3Options(
        endpoint_url=None, region=None, access_key_id=None, secret_access_key=None,
        addressing_style=None, url_expiry=3600)


@pytest.mark.parametrize("environ, message", [
    ({"AFFIX_STORAGE_URL": "s3:///prefix"},
     "AFFIX_STORAGE_URL: 's3:///prefix' is not an S3 URL of the form s3://bucket/prefix"),
    ({"AFFIX_STORAGE_URL": "gs://bucket"},
     "AFFIX_STORAGE_URL must be a folder, a file:// URL or s3://bucket/prefix, not 'gs://bucket'"),
    ({"AFFIX_S3_ENDPOINT_URL": "127.0.0.1:9000"},
     "AFFIX_S3_ENDPOINT_URL must be http://host[:port] or https://host[:port], "
     "not '127.0.0.1:9000'"),
    ({"AFFIX_S3_ACCESS_KEY_ID": "id"},
     "AFFIX_S3_ACCESS_KEY_ID and AFFIX_S3_SECRET_ACCESS_KEY go together: set both, or neither "
     "to use boto3's own credential chain"),
    ({"AFFIX_S3_ADDRESSING_STYLE": "dns"},
     "AFFIX_S3_ADDRESSING_STYLE must be one of path, virtual, not 'dns'"),
    ({"AFFIX_S3_URL_EXPIRY": "soon"}, "AFFIX_S3_URL_EXPIRY must be a whole number, not 'soon'"),
    ({"AFFIX_S3_URL_EXPIRY": "604801"},
     "AFFIX_S3_URL_EXPIRY must be at most 604800 seconds (seven days, what S3 signs for), "
     "not 604801"),
])
def test_bad_s3_settings_are_refused_with_the_variable_named(environ, message):
    with pytest.raises(SettingsError) as refused:
        Settings.from_environ(environ)
    assert str(refused.value) == message


def test_without_boto3_an_s3_store_says_what_to_install(monkeypatch):
    # None in sys.modules: the import fails as where boto3 is not installed
    monkeypatch.setitem(sys.modules, "boto3.session", None)

    with pytest.raises(ValueError) as raised:
        s3_client(S3Options())
    assert str(raised.value) == ("S3 storage needs boto3: pip install boto3 (or, in affix's "
                                 "folder, pip install '.[s3]')")


def test_a_module_boto3_needs_and_lacks_is_said_as_it_is(tmp_path, monkeypatch):
    # the real boto3 first, so that the test ends with it back in sys.modules
    importlib.import_module("boto3.session")
    for name in [name for name in sys.modules if name.partition(".")[0] == "boto3"]:
        monkeypatch.delitem(sys.modules, name)
    # then a boto3 whose session imports a module nobody installed, in place of the real one
    package = tmp_path / "boto3"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "session.py").write_text("import affix_test_no_such_module\n")
    monkeypatch.syspath_prepend(str(tmp_path))

    with pytest.raises(ModuleNotFoundError) as raised:
        s3_client(S3Options())
    assert raised.value.name == "affix_test_no_such_module"
