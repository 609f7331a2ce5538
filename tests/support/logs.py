"""A real server's log (its stderr), read back: JSON lines parsed, access lines found."""
import json

from .waiting import wait_for


def json_lines(log: str) -> list:
    """Every line of ``log`` as the JSON object it must be."""
    lines = []
    for line in log.splitlines():
        document = json.loads(line)
        assert isinstance(document, dict), line
        lines.append(document)
    return lines


def access_lines(server) -> list:
    return [line for line in json_lines(server.stderr()) if line["logger"] == "gunicorn.access"]


def access_line(server, request_id) -> dict:
    """The access line of the request with ``request_id``, once the server has written it (it
    does so after the answer's last byte, so a client may see the answer first)."""
    found = []

    def written():
        found[:] = [line for line in access_lines(server) if line["request_id"] == request_id]
        return found

    wait_for(written, f"the access line of request {request_id}")
    assert len(found) == 1, found
    return found[0]


def wait_for_access_lines(server, count, **fields) -> list:
    """The access lines with ``fields``, once there are ``count`` of them."""
    found = []

    def written():
        found[:] = [line for line in access_lines(server)
                    if all(line[name] == value for name, value in fields.items())]
        return len(found) >= count

    wait_for(written, f"{count} access lines with {fields}")
    return found
