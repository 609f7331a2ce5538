"""Copy the blobs of an affix that stores in S3-compatible object storage to a folder, or a
folder back into the bucket, with the settings affix itself reads (AFFIX_STORAGE_URL and the
AFFIX_S3_* variables):

    python3 deploy/copy_bucket.py download /backup/affix-2026-12-08-blobs
    python3 deploy/copy_bucket.py upload /backup/affix-2026-12-08-blobs

Run it where affix is installed (it needs affix and boto3, nothing else). A backup takes the
database first (pg_dump), then the blobs with ``download``: an upload stores its object before it
writes its row, so every row in the dump has its object in the bucket when the copy runs after
it. Objects of direct uploads not yet completed are left out: none of them is an attachment.
``download`` refuses a folder that exists already; ``upload`` refuses a bucket prefix that holds
objects already, so that a restore never mixes two installations' blobs.
"""
import sys
from pathlib import Path

from affix.app.settings import Settings, SettingsError
from affix.storage.s3 import parse_s3_url, s3_client
from affix.storage.s3_staging import STAGING_FOLDER

USAGE = "usage: copy_bucket.py download|upload FOLDER"


def stored_keys(client, bucket: str, prefix: str):
    """(object key, its name below the prefix) of every blob under ``prefix``."""
    below = f"{prefix}/" if prefix else ""
    for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=below):
        for item in page.get("Contents", ()):
            name = item["Key"][len(below):]
            if not name.startswith(f"{STAGING_FOLDER}/"):
                yield item["Key"], name


def download(client, bucket: str, prefix: str, folder: Path) -> int:
    if folder.exists():
        raise SystemExit(f"copy_bucket: {folder} exists already: name a new folder")
    folder.mkdir(parents=True)
    count = 0
    for key, name in stored_keys(client, bucket, prefix):
        target = folder / name
        target.parent.mkdir(parents=True, exist_ok=True)
        client.download_file(bucket, key, str(target))
        count += 1
    return count


def upload(client, bucket: str, prefix: str, folder: Path) -> int:
    if not folder.is_dir():
        raise SystemExit(f"copy_bucket: no folder at {folder}")
    if next(stored_keys(client, bucket, prefix), None) is not None:
        raise SystemExit(f"copy_bucket: s3://{bucket}/{prefix} holds objects already: "
                         "restore into an empty bucket or prefix")
    count = 0
    for path in sorted(folder.rglob("*")):
        if path.is_file():
            name = path.relative_to(folder).as_posix()
            client.upload_file(str(path), bucket, f"{prefix}/{name}" if prefix else name)
            count += 1
    return count


def main(arguments: list[str]) -> None:
    if len(arguments) != 2 or arguments[0] not in ("download", "upload"):
        raise SystemExit(USAGE)
    direction, folder = arguments[0], Path(arguments[1]).absolute()
    try:
        settings = Settings.from_environ()
        bucket, prefix = parse_s3_url(settings.storage_url)
        client = s3_client(settings.s3)
    except (SettingsError, ValueError) as error:
        raise SystemExit(f"copy_bucket: {error}") from None
    copy = download if direction == "download" else upload
    count = copy(client, bucket, prefix, folder)
    where = f"s3://{bucket}/{prefix}"
    source, target = (where, folder) if direction == "download" else (folder, where)
    print(f"copy_bucket: copied {count} blobs from {source} to {target}")


if __name__ == "__main__":
    main(sys.argv[1:])
