"""Clients that hold a server's threads if they reach them, and the normal requests that show
whether they do; for the slow-client test and ``python -m tests.bench.slow_clients``."""
import concurrent.futures
import contextlib
import json
import socket

import requests

from .bodies import upload_body

STALLED_BODY_SIZE = 1024 * 1024


@contextlib.contextmanager
def hostile_clients(base_url, auth, stalled, idle, timeout=60):
    """``stalled`` uploads that sent their headers and the first KiB of a 1 MiB body, then
    nothing; and ``idle`` connections that send nothing at all. All closed at the end."""
    host, port = base_url.removeprefix("http://").split(":")
    opened = []
    try:
        for _ in range(stalled):
            sock = socket.create_connection((host, int(port)), timeout=timeout)
            opened.append(sock)
            sock.sendall(
                b"POST /api/v3/attachments HTTP/1.1\r\nHost: affix\r\n"
                + f"Authorization: {auth['Authorization']}\r\n".encode()
                + b"Content-Type: multipart/form-data; boundary=stalled\r\n"
                + f"Content-Length: {STALLED_BODY_SIZE}\r\n\r\n".encode()
                + b"--stalled\r\n" + b"x" * 1024)
        for _ in range(idle):
            opened.append(socket.create_connection((host, int(port)), timeout=timeout))
        yield
    finally:
        for sock in opened:
            sock.close()


def normal_requests(base_url, auth, count, timeout) -> list:
    """The status of each of ``count`` requests made at once, every other one an upload of a
    file named normal-<number>.txt; None for one not answered within ``timeout`` seconds."""
    def one(number):
        try:
            if number % 2:
                return requests.get(f"{base_url}/api/v3", headers=auth,
                                    timeout=timeout).status_code
            body, content_type = upload_body(
                json.dumps({"fileName": f"normal-{number}.txt"}).encode(), b"normal")
            return requests.post(f"{base_url}/api/v3/attachments", data=body,
                                 headers={**auth, "Content-Type": content_type},
                                 timeout=timeout).status_code
        except (requests.Timeout, requests.ConnectionError):
            return None

    with concurrent.futures.ThreadPoolExecutor(count) as pool:
        return list(pool.map(one, range(count)))
