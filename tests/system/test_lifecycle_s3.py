"""Quarantine on S3-compatible storage (moto's S3 server): a scanned file's download is a
pre-signed link to the bucket, a quarantined one's is affix's own, which refuses it. (The
lifecycle in process: functional/test_lifecycle.py.)"""
import falcon.testing

from affix.app import create_app
from affix.plugins.clamav import ScanOptions
from support.client import download, get, uploaded
from support.defaults import FROZEN_NOW
from support.errors import assert_error
from support.statuses import NO_CLAMD, QUARANTINED, set_status


def test_a_quarantined_file_in_s3_gets_no_pre_signed_link(
        tmp_path, databases, people, catalog, plugin_manager, s3_bucket):
    settings = databases.settings(
        tmp_path / "data", storage_url=s3_bucket.url(), s3=s3_bucket.options,
        scan=ScanOptions(mode="after", clamd=NO_CLAMD))
    client = falcon.testing.TestClient(
        create_app(settings, plugin_manager=plugin_manager, clock=lambda: FROZEN_NOW))
    attachment_id = uploaded(client, people, "bob", content=b"in a bucket")

    set_status(catalog, attachment_id, "scanned")
    scanned = get(client, people, "bob", f"/api/v3/attachments/{attachment_id}")
    set_status(catalog, attachment_id, "quarantined")
    quarantined = get(client, people, "bob", f"/api/v3/attachments/{attachment_id}")

    assert scanned.json["_links"]["downloadLocation"]["href"].startswith(s3_bucket.endpoint_url)
    assert quarantined.json["_links"]["downloadLocation"]["href"] == (
        f"/api/v3/attachments/{attachment_id}/download")
    assert_error(download(client, people, "bob", attachment_id), 403, "MissingPermission",
                 QUARANTINED.format("notes.txt"))
