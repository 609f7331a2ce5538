"""Direct uploads as a client makes them: preparing through falcon.testing, then sending the
file to the store with the form affix answered, as a real HTTP multipart POST."""
import base64
import json

import requests

from affix.app.testing import multipart

from .net import REQUEST_TIMEOUT

PREPARE_PATH = "/api/v3/attachments/prepare"


def metadata_body(document):
    """(body, Content-Type) of a prepare request whose metadata part is ``document`` (JSON
    unless it is bytes already)."""
    raw = document if isinstance(document, bytes) else json.dumps(document).encode()
    return multipart([("metadata", raw, {"Content-Type": "application/json"})])


def prepare(client, people, login, document, path=PREPARE_PATH):
    body, content_type = metadata_body(document)
    return client.simulate_post(
        path, body=body, headers={**people.auth(login), "Content-Type": content_type})


def prepared(client, people, login, file_name, content, path=PREPARE_PATH) -> dict:
    """The AttachmentUpload of a successful preparation of ``content``."""
    response = prepare(client, people, login,
                       {"fileName": file_name, "fileSize": len(content)}, path)
    assert response.status_code == 201, response.json
    return response.json


def send_to_store(upload: dict, content: bytes, **field_changes):
    """POST ``content`` to the store exactly as ``upload``'s addAttachment link says: its
    form fields in their order, then the part ``file``; ``field_changes`` tamper with the
    fields."""
    link = upload["_links"]["addAttachment"]
    assert link["method"] == "post"
    fields = {**link["form_fields"], **field_changes}
    return requests.post(link["href"], data=list(fields.items()),
                         files={"file": ("upload.bin", content)}, timeout=REQUEST_TIMEOUT)


def complete(client, people, login, upload: dict):
    return client.simulate_get(upload["_links"]["completeUpload"]["href"],
                               headers=people.auth(login))


def policy_of(upload: dict) -> dict:
    """The decoded policy document of ``upload``'s form."""
    return json.loads(base64.b64decode(upload["_links"]["addAttachment"]["form_fields"]["policy"]))
