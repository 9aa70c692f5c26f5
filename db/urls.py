"""URLs with credentials, made safe to show: the one redactor for every URL (database, broker,
SMTP) that reaches a log line or an error message."""

from __future__ import annotations

from urllib.parse import unquote

from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError


def _credentials(url: str) -> tuple[str, str, str, str] | None:
    """(scheme, user, password, location) of a URL with a password, else None.

    The last "@" ends the credentials, so a password holding an unescaped "@", "/", "#" or "?"
    is taken whole (a URL parser stops at the first of them and would show the rest).
    """
    scheme, sep, rest = url.partition("://")
    userinfo, at, location = rest.rpartition("@")
    if not (sep and at and ":" in userinfo):
        return None
    user, _, password = userinfo.partition(":")
    return scheme, user, password, location


def redact_url(url: str) -> str:
    """`url` with any password replaced by `***` (the user name is kept); never raises, because
    it runs on error paths."""
    found = _credentials(url)
    if found is None:
        return url
    scheme, user, password, location = found
    try:
        # make_url's password ends at the first "@"; the others are escaped.
        parsed = make_url(f"{scheme}://{user}:{password.replace('@', '%40')}@{location}")
    except (ArgumentError, ValueError):
        return f"{scheme}://{user}:***@{location}"
    return parsed.render_as_string(hide_password=True)


def url_password(url: str) -> str | None:
    """The password as written in `url` (and unescaped), to scrub from texts that may echo it."""
    found = _credentials(url)
    return None if found is None else unquote(found[2])
