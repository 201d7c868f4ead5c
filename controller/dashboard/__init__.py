"""The operator's dashboard: static files (index.html, app.js, style.css) the HTTP API
serves at `/` and `/dashboard/...`. They hold no data: the page fetches /api/v1/* with the
bearer token it was opened with (`/?token=...`), so they are served without one."""
from __future__ import annotations

from dataclasses import dataclass
from importlib import resources

CONTENT_TYPES = {".html": "text/html; charset=utf-8", ".js": "text/javascript; charset=utf-8",
                 ".css": "text/css; charset=utf-8"}
ROUTES = {"/": "index.html", "/index.html": "index.html",
          "/dashboard/app.js": "app.js", "/dashboard/style.css": "style.css"}
# Nothing from elsewhere (works offline, nothing to inject); the token never leaves in a Referer.
HEADERS = {"Content-Security-Policy": "default-src 'self'; img-src 'self' data:; "
                                      "frame-ancestors 'none'; base-uri 'none'; form-action 'none'",
           "X-Content-Type-Options": "nosniff", "Referrer-Policy": "no-referrer",
           "Cache-Control": "no-cache"}


@dataclass(frozen=True)
class Asset:
    body: bytes
    content_type: str
    headers: dict


class Dashboard:
    """The page's files, read once from the package."""

    def __init__(self) -> None:
        files = resources.files(__name__)
        self._assets = {}
        for route, name in ROUTES.items():
            suffix = name[name.rindex("."):]
            self._assets[route] = Asset(files.joinpath(name).read_bytes(), CONTENT_TYPES[suffix], HEADERS)

    def asset(self, path: str) -> Asset | None:
        return self._assets.get(path)
