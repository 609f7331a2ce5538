"""Upload a file to an S3-backed affix in parts, straight to the bucket, four parts at a time;
run again with the same parts URL, it sends only the parts the bucket lacks.

    AFFIX_API_KEY=... python upload_in_parts.py https://affix.example.com big.iso [PARTS_URL]

It prints the parts URL (keep it to resume), then the attachment's id and md5.
"""
import concurrent.futures
import json
import os
import sys

import requests


def prepare(session, server, path):
    """Declare the file: affix answers how to cut it, and where its parts are."""
    metadata = {"fileName": os.path.basename(path), "fileSize": os.path.getsize(path),
                "parts": True}
    answer = session.post(f"{server}/api/v3/attachments/prepare",
                          files={"metadata": (None, json.dumps(metadata), "application/json")})
    answer.raise_for_status()
    return server + answer.json()["_links"]["uploadParts"]["href"]


def put_part(path, part, part_size):
    """PUT one part to its pre-signed URL: the bucket, not affix, and no API key."""
    with open(path, "rb") as file:
        file.seek((part["partNumber"] - 1) * part_size)
        data = file.read(part["size"])
    requests.put(part["href"], data=data).raise_for_status()


def upload(server, api_key, path, parts_url=None, parallel=4):
    session = requests.Session()
    session.auth = ("apikey", api_key)
    parts_url = parts_url or prepare(session, server, path)
    print(parts_url, flush=True)
    parts = session.get(parts_url).json()
    held = {part["partNumber"] for part in parts["parts"]}
    missing = [number for number in range(1, parts["partCount"] + 1) if number not in held]
    with concurrent.futures.ThreadPoolExecutor(parallel) as pool:
        for first in range(0, len(missing), 100):
            numbers = ",".join(map(str, missing[first:first + 100]))
            urls = session.get(f"{parts_url}/urls", params={"partNumbers": numbers})
            urls.raise_for_status()
            for done in [pool.submit(put_part, path, part, parts["partSize"])
                         for part in urls.json()["parts"]]:
                done.result()
    # affix joins the parts the bucket holds, then checks the file as any upload's
    completed = session.get(server + parts["_links"]["completeUpload"]["href"])
    completed.raise_for_status()
    return completed.json()


if __name__ == "__main__":
    attachment = upload(sys.argv[1], os.environ["AFFIX_API_KEY"], *sys.argv[2:])
    print(attachment["id"], attachment["digest"]["hash"])
