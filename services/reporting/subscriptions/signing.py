"""Delivery signatures: HMAC-SHA256 over "<timestamp>.<raw body>" with the subscription's secret.

The timestamp is inside what is signed, so a captured delivery cannot be replayed later with a fresh
timestamp; receivers should refuse timestamps older than a few minutes (docs/events.md).
"""

import hashlib
import hmac

SCHEME = "sha256"


def signature(secret: str, timestamp: int, body: bytes) -> str:
    """The X-Switchyard-Signature header value: "sha256=<hex>"."""
    digest = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()
    return f"{SCHEME}={digest}"


def verify(secret: str, timestamp: str, body: bytes, header: str, *, now: float, tolerance: float = 300) -> bool:
    """What a receiver does (also the snippet in docs/events.md): a fresh timestamp and a matching signature."""
    if not timestamp.isdigit() or abs(now - int(timestamp)) > tolerance:
        return False
    return hmac.compare_digest(signature(secret, int(timestamp), body), header)
