"""URLs with credentials, made safe to show."""

from __future__ import annotations

from urllib.parse import SplitResult, urlsplit, urlunsplit


def redact_url(url: str) -> str:
    """Return `url` with any password replaced by `***` (the user name is kept)."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return "<unparsable url>"
    if parts.password is None:
        return url
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    netloc = f"{parts.username or ''}:***@{host}"
    if parts.port is not None:
        netloc += f":{parts.port}"
    return urlunsplit(SplitResult(parts.scheme, netloc, parts.path, parts.query, parts.fragment))
