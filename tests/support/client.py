"""Requests through falcon.testing as one of conftest's ``people``, by login."""
from affix.app.testing import upload as upload_as


def post(client, people, body_and_type, login="ada", **headers):
    """POST a ready (body, Content-Type) to the containerless upload path."""
    body, content_type = body_and_type
    return client.simulate_post(
        "/api/v3/attachments", body=body,
        headers={**people.auth(login), "Content-Type": content_type, **headers},
    )


def upload(client, people, login, name="notes.txt", content=b"hello",
           path="/api/v3/attachments"):
    return upload_as(client, people.auth(login), name, content, path)


def uploaded(client, people, login, **kwargs) -> int:
    """The id of a successful upload (containerless unless ``path`` says otherwise)."""
    response = upload(client, people, login, **kwargs)
    assert response.status_code == 200, response.json
    return response.json["id"]


def get(client, people, login, path):
    return client.simulate_get(path, headers=people.auth(login))


def download(client, people, login, attachment_id):
    """An attachment's download, as ``login``."""
    return get(client, people, login, f"/api/v3/attachments/{attachment_id}/download")
