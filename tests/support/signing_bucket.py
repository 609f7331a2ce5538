"""A bucket that checks pre-signed URLs as S3 does, in front of moto's server (which checks
neither signature nor expiry): a request signed in its query (``X-Amz-Signature``) is signed
again with the test's credentials from what it carries, and refused (403, S3's error codes)
when the signatures differ (another upload id, another part number, another length) or when
its ``X-Amz-Date`` plus ``X-Amz-Expires`` lies before the bucket's clock, which the test sets.
Every other request goes to moto as it came."""
import datetime
import threading
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import requests
from botocore.auth import S3SigV4QueryAuth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

from .net import HOST, REQUEST_TIMEOUT
from .s3 import ACCESS_KEY_ID, REGION, SECRET_ACCESS_KEY

AMZ_DATE = "%Y%m%dT%H%M%SZ"
# what moto's answer carries that the bucket's own connection decides
HOP_BY_HOP = {"connection", "transfer-encoding", "keep-alive", "content-length", "server",
              "date"}


def expected_signature(method, url, headers) -> str:
    """The signature S3 computes for a request to ``url`` (with its query's X-Amz-*
    parameters) that carries ``headers``."""
    parts = urllib.parse.urlsplit(url)
    query = urllib.parse.parse_qsl(parts.query, keep_blank_values=True)
    signing = dict(query)
    operation = [(name, value) for name, value in query if not name.startswith("X-Amz-")]
    signed_names = signing["X-Amz-SignedHeaders"].split(";")
    request = AWSRequest(method=method, url=urllib.parse.urlunsplit(
        parts._replace(query=urllib.parse.urlencode(operation))),
        headers={name: value for name, value in headers.items()
                 if name.lower() in signed_names and name.lower() != "host"})
    request.context["timestamp"] = signing["X-Amz-Date"]
    auth = S3SigV4QueryAuth(Credentials(ACCESS_KEY_ID, SECRET_ACCESS_KEY), "s3", REGION,
                            expires=int(signing["X-Amz-Expires"]))
    auth._modify_request_before_signing(request)
    return auth.signature(auth.string_to_sign(request, auth.canonical_request(request)),
                          request)


def refusal(url, method, headers, now) -> tuple[str, str] | None:
    """(S3's error code, message) for a pre-signed request the bucket refuses; None when it
    takes it."""
    signing = dict(urllib.parse.parse_qsl(urllib.parse.urlsplit(url).query))
    signed_at = datetime.datetime.strptime(signing["X-Amz-Date"], AMZ_DATE)
    if now > signed_at + datetime.timedelta(seconds=int(signing["X-Amz-Expires"])):
        return "AccessDenied", "Request has expired"
    if expected_signature(method, url, headers) != signing["X-Amz-Signature"]:
        return ("SignatureDoesNotMatch", "The request signature we calculated does not match "
                "the signature you provided.")
    return None


class SigningBucket:
    """moto at ``upstream_url``, behind a check of pre-signed requests; ``clock()`` is the
    bucket's time (naive UTC), the real time until the test sets another."""

    def __init__(self, upstream_url, clock=None):
        self.upstream_url = upstream_url
        self.clock = clock or (lambda: datetime.datetime.now(datetime.UTC).replace(tzinfo=None))
        bucket = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def handle_one(self):
                bucket.answer(self)
            do_GET = do_PUT = do_POST = do_DELETE = do_HEAD = handle_one

        self._server = ThreadingHTTPServer((HOST, 0), Handler)
        threading.Thread(target=self._server.serve_forever, daemon=True).start()

    @property
    def url(self):
        return f"http://{HOST}:{self._server.server_address[1]}"

    def answer(self, handler):
        body = handler.rfile.read(int(handler.headers.get("Content-Length") or 0))
        url = self.url + handler.path
        if "X-Amz-Signature=" in handler.path:
            refused = refusal(url, handler.command, handler.headers, self.clock())
            if refused is not None:
                code, message = refused
                text = (f"<?xml version=\"1.0\" encoding=\"UTF-8\"?><Error><Code>{code}</Code>"
                        f"<Message>{message}</Message></Error>").encode()
                handler.send_response(403)
                handler.send_header("Content-Type", "application/xml")
                handler.send_header("Content-Length", str(len(text)))
                handler.end_headers()
                handler.wfile.write(text)
                return
        upstream = requests.request(
            handler.command, self.upstream_url + handler.path, data=body,
            headers={name: value for name, value in handler.headers.items()
                     if name.lower() != "host"}, timeout=REQUEST_TIMEOUT)
        handler.send_response(upstream.status_code)
        for name, value in upstream.headers.items():
            if name.lower() not in HOP_BY_HOP:
                handler.send_header(name, value)
        handler.send_header("Content-Length", str(len(upstream.content)))
        handler.end_headers()
        if handler.command != "HEAD":
            handler.wfile.write(upstream.content)

    def close(self):
        self._server.shutdown()
        self._server.server_close()
