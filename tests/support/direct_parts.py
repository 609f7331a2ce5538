"""Direct uploads in parts as a client makes them: preparing, asking for part URLs and the
parts held through falcon.testing, sending parts to the bucket as real HTTP PUTs."""
import requests

from .direct_uploads import prepare
from .net import REQUEST_TIMEOUT


def prepared_in_parts(client, people, login, file_name, size, **declared) -> dict:
    """The AttachmentUpload of a successful preparation in parts of ``size`` bytes."""
    response = prepare(client, people, login,
                       {"fileName": file_name, "fileSize": size, "parts": True, **declared})
    assert response.status_code == 201, response.json
    return response.json


def parts_path(upload: dict) -> str:
    return upload["_links"]["uploadParts"]["href"]


def ask_part_urls(client, people, login, upload: dict, query: str):
    return client.simulate_get(f"{parts_path(upload)}/urls", query_string=query,
                               headers=people.auth(login))


def part_urls(client, people, login, upload: dict, numbers) -> dict:
    """{number: URL} of the parts ``numbers``."""
    response = ask_part_urls(client, people, login, upload,
                             "partNumbers=" + ",".join(map(str, numbers)))
    assert response.status_code == 200, response.json
    return {part["partNumber"]: part["href"] for part in response.json["parts"]}


def held(client, people, login, upload: dict):
    return client.simulate_get(parts_path(upload), headers=people.auth(login))


def part_of(content: bytes, upload: dict, number: int) -> bytes:
    size = upload["partSize"]
    return content[(number - 1) * size: number * size]


def put_part(url: str, data: bytes):
    return requests.put(url, data=data, timeout=REQUEST_TIMEOUT)


def send_parts(client, people, login, upload: dict, content: bytes, numbers=None):
    """PUT parts ``numbers`` (all by default) of ``content`` to the bucket, each to its URL."""
    numbers = range(1, upload["partCount"] + 1) if numbers is None else numbers
    for number, url in part_urls(client, people, login, upload, numbers).items():
        answer = put_part(url, part_of(content, upload, number))
        assert answer.status_code == 200, answer.text
