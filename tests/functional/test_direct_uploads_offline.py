"""Direct uploads without an S3 server: with local storage every client is told to fall back
(422, OpenProject's message) before anything is stored, and the settings of direct uploads.
system/test_direct_uploads.py has the flow itself, against moto's S3 server."""
import pytest

from affix.app.settings import Settings, SettingsError
from support.direct_uploads import PREPARE_PATH, prepare
from support.errors import MAY_NOT_UPLOAD, NOT_FOUND, assert_error
from support.work_packages import created

NOT_AVAILABLE = ("Direct file upload is not available due to a system configuration issue. "
                 "Please contact your administrator.")
GiB = 1024 ** 3


def test_local_storage_answers_prepare_with_422_so_that_clients_fall_back(
        client, people, earlier, stored):
    work_package_id = created(client, people, "ada")
    for path in (PREPARE_PATH, f"/api/v3/work_packages/{work_package_id}/attachments/prepare"):
        response = prepare(client, people, "ada", {"fileName": "a.png", "fileSize": 3}, path)
        assert_error(response, 422, "PropertyConstraintViolation", NOT_AVAILABLE)
    assert stored.snapshot() == earlier


def test_the_permission_comes_before_the_storage_is_considered(client, people, earlier, stored):
    response = prepare(client, people, "eve", {"fileName": "a.png", "fileSize": 3})
    assert_error(response, 403, "MissingPermission", MAY_NOT_UPLOAD)
    assert stored.snapshot() == earlier


# an attachment uploaded whole is at /api/v3/attachments/{id}: never an upload to complete,
# nor one pending
@pytest.mark.parametrize("path", ["/api/v3/attachments/{id}/uploaded",
                                  "/api/v3/attachment_upload/{id}"])
def test_local_storage_has_no_upload_to_complete_nor_pending(client, people, earlier, stored,
                                                             path):
    [(attachment_id, *_)] = stored.rows()
    response = client.simulate_get(path.format(id=attachment_id), headers=people.auth("ada"))
    assert_error(response, 404, "NotFound", NOT_FOUND)
    assert stored.snapshot() == earlier


def test_direct_upload_settings_default_to_four_hours_and_every_upload_s_limit():
    settings = Settings.from_environ({"AFFIX_MAX_ATTACHMENT_SIZE": "1000"})
    assert (settings.direct_upload_expiry, settings.direct_upload_limit) == (4 * 3600, 1000)
    # above what S3 takes in one POST, every upload's limit leaves direct uploads at 5 GiB
    settings = Settings.from_environ({"AFFIX_MAX_ATTACHMENT_SIZE": str(6 * GiB)})
    assert settings.direct_upload_limit == 5 * GiB


def test_direct_upload_settings_come_from_the_environment():
    settings = Settings.from_environ({"AFFIX_MAX_ATTACHMENT_SIZE": str(3 * GiB),
                                      "AFFIX_MAX_DIRECT_UPLOAD_SIZE": str(2 * GiB),
                                      "AFFIX_DIRECT_UPLOAD_EXPIRY": "600",
                                      "AFFIX_DIRECT_PART_URL_EXPIRY": "60"})
    assert (settings.direct_upload_expiry, settings.direct_upload_limit) == (600, 2 * GiB)
    assert settings.direct_part_url_expiry == 60
    assert Settings.from_environ({}).direct_part_url_expiry == 900
    # never above every upload's limit, the largest file accepted
    settings = Settings.from_environ({"AFFIX_MAX_DIRECT_UPLOAD_SIZE": str(2 * GiB)})
    assert settings.direct_upload_limit == settings.max_attachment_size == 5 * 1024 * 1024
    assert settings.lowered_limits() == [
        f"AFFIX_MAX_DIRECT_UPLOAD_SIZE={2 * GiB} is above AFFIX_MAX_ATTACHMENT_SIZE, the "
        f"largest file accepted: direct uploads take at most 5242880 bytes"]


@pytest.mark.parametrize("environ, message", [
    ({"AFFIX_MAX_DIRECT_UPLOAD_SIZE": "big"},
     "AFFIX_MAX_DIRECT_UPLOAD_SIZE must be a size: bytes (5242880), or K, M, G with or without "
     "iB (5M, 5MiB: 1024-based); not 'big'"),
    ({"AFFIX_MAX_DIRECT_UPLOAD_SIZE": "0"},
     "AFFIX_MAX_DIRECT_UPLOAD_SIZE must be greater than 0, not '0'"),
    ({"AFFIX_MAX_DIRECT_UPLOAD_SIZE": str(5 * GiB + 1)},
     f"AFFIX_MAX_DIRECT_UPLOAD_SIZE must be at most {5 * GiB} bytes (5 GiB, what S3 takes in "
     f"one POST and copies in one request), not {5 * GiB + 1}"),
    ({"AFFIX_DIRECT_UPLOAD_EXPIRY": "-5"},
     "AFFIX_DIRECT_UPLOAD_EXPIRY must be greater than 0, not '-5'"),
    ({"AFFIX_DIRECT_UPLOAD_EXPIRY": "604801"},
     "AFFIX_DIRECT_UPLOAD_EXPIRY must be at most 604800 seconds (seven days, what S3 signs "
     "for), not 604801"),
    ({"AFFIX_DIRECT_PART_URL_EXPIRY": "0"},
     "AFFIX_DIRECT_PART_URL_EXPIRY must be greater than 0, not '0'"),
    ({"AFFIX_DIRECT_PART_URL_EXPIRY": "604801"},
     "AFFIX_DIRECT_PART_URL_EXPIRY must be at most 604800 seconds (seven days, what S3 signs "
     "for), not 604801"),
])
def test_bad_direct_upload_settings_are_refused_with_the_variable_named(environ, message):
    with pytest.raises(SettingsError) as refused:
        Settings.from_environ(environ)
    assert str(refused.value) == message
