"""A plain HTTP(S) client for the API tests: status, headers and body of one request."""
from __future__ import annotations

import json
import ssl
import urllib.error
import urllib.request


def call(url: str, token: str | None = None, method: str = "GET", headers: dict | None = None,
         context: ssl.SSLContext | None = None) -> tuple[int, dict, object]:
    """(HTTP status, headers, body: JSON when it is JSON, else text)."""
    req = urllib.request.Request(url, method=method, headers=dict(headers or {}),
                                 data=b"" if method == "POST" else None)
    if token is not None:
        req.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(req, timeout=10, context=context) as r:
            status, hdrs, raw = r.status, dict(r.headers), r.read()
    except urllib.error.HTTPError as exc:
        status, hdrs, raw = exc.code, dict(exc.headers), exc.read()
    text = raw.decode()
    if hdrs.get("Content-Type", "").startswith("application/json"):
        return status, hdrs, json.loads(text)
    return status, hdrs, text
