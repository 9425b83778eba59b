"""Stripe-style webhook signatures: ``Casebridge-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256>``.

The signed message is ``f"{t}.".encode() + body`` (the raw request body, byte for byte) and the key is
the webhook's secret exactly as shown when it was created (``whsec_…``), UTF-8 encoded. A receiver
recomputes the HMAC over the bytes it received, compares in constant time, and refuses a timestamp
more than ``tolerance`` seconds away from its clock (a captured request cannot be replayed later).
docs/webhooks.md shows the same check in Python and Node for receivers.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time

HEADER = "Casebridge-Signature"
SCHEME = "v1"
DEFAULT_TOLERANCE = 300  # seconds
SECRET_PREFIX = "whsec_"


def new_secret() -> str:
    """A fresh signing secret: 256 random bits, URL-safe."""
    return SECRET_PREFIX + secrets.token_urlsafe(32)


def compute(secret: str, body: bytes, t: int) -> str:
    """The hex HMAC-SHA256 of ``"<t>." + body`` under ``secret``."""
    return hmac.new(secret.encode(), f"{t}.".encode() + body, hashlib.sha256).hexdigest()


def sign(secret: str, body: bytes, t: int | None = None) -> str:
    """The ``Casebridge-Signature`` header value for ``body`` sent at unix time ``t`` (default: now)."""
    t = int(time.time()) if t is None else t
    return f"t={t},{SCHEME}={compute(secret, body, t)}"


def parse(header: str) -> tuple[int | None, list[str]]:
    """(timestamp, every v1 signature) from a header; unknown schemes are ignored."""
    t: int | None = None
    signatures: list[str] = []
    for part in header.split(","):
        key, sep, value = part.strip().partition("=")
        if not sep:
            continue
        if key == "t" and value.isdigit():
            t = int(value)
        elif key == SCHEME and value:
            signatures.append(value)
    return t, signatures


def verify(
    secret: str,
    body: bytes,
    header: str,
    tolerance: float = DEFAULT_TOLERANCE,
    now: float | None = None,
) -> bool:
    """Whether ``header`` is a valid signature of ``body`` under ``secret``, made within ``tolerance``
    seconds of ``now`` (either side). Compares in constant time."""
    t, signatures = parse(header)
    if t is None or not signatures:
        return False
    now = time.time() if now is None else now
    if abs(now - t) > tolerance:
        return False
    expected = compute(secret, body, t)
    return any(hmac.compare_digest(expected, s) for s in signatures)
