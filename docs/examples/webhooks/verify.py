import hashlib
import hmac
import time


def verify(secret: str, headers, body: bytes, now: float | None = None) -> bool:
    timestamp = headers["Affix-Webhook-Timestamp"]
    signed = timestamp.encode() + b"." + body
    expected = "v1=" + hmac.new(secret.encode(), signed, hashlib.sha256).hexdigest()
    fresh = abs((time.time() if now is None else now) - int(timestamp)) <= 300
    return fresh and hmac.compare_digest(expected, headers["Affix-Webhook-Signature"])
