"""URLs with credentials, made safe to show.

Nothing here parses a URL with a library that may fail or misread it: a password that is not
percent-encoded (`user:Sec/ret@host`, `user:Sec#ret@host`, `user:Sec@ret@host`) is cut by a URL
parser at the `/`, `#` or first `@`, and its tail then shows up as a path, a fragment or a host in
an error message. So the password is found here by plain string search, the way a reader sees it:
from the first `:` of the user info to the last `@` that can end it.
"""

from __future__ import annotations

import re
from urllib.parse import unquote

_SCHEME = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*://")
# Characters that must be percent-encoded in a password because they end the user info or the
# authority: `/`, `?`, `#` (and `@` more than once, which some parsers split at the first).
ENCODINGS = "%2F for /, %3F for ?, %23 for #, %40 for @"


def _password_span(url: str) -> tuple[int, int, bool] | None:
    """(start, end, misread) of the password in `url`; `misread` when a URL parser would cut it
    (an unencoded `/`, `?`, `#` or `@` in it). None when the URL has no password."""
    match = _SCHEME.match(url)
    if match is None:
        return None
    start = match.end()
    rest = url[start:]
    authority_end = next((i for i, ch in enumerate(rest) if ch in "/?#"), len(rest))
    authority = rest[:authority_end]
    if "@" in authority:
        userinfo = authority[: authority.rfind("@")]
        colon = userinfo.find(":")
        if colon < 0:
            return None
        return start + colon + 1, start + len(userinfo), authority.count("@") > 1
    at = rest.rfind("@")
    colon = authority.find(":")
    if at < 0 or colon < 0 or authority.startswith("["):
        return None
    port = authority[colon + 1 :]
    if port.isdigit() or port == "":
        # host:port, and the `@` belongs to the path or query (smtp://host:25?x=a@b).
        return None
    return start + colon + 1, start + at, True


def redact_url(url: str) -> str:
    """`url` with its password replaced by `***` (the user name is kept). Never raises."""
    span = _password_span(url)
    if span is None:
        return url
    begin, end, _ = span
    return f"{url[:begin]}***{url[end:]}"


def password_misread(url: str) -> bool:
    """Whether `url` has a password that URL parsers would cut short (not percent-encoded)."""
    span = _password_span(url)
    return span is not None and span[2]


def check_password_encoded(url: str, what: str) -> None:
    """Raise `ValueError` (a message without the URL) when `url`'s password is not encoded."""
    if password_misread(url):
        raise ValueError(
            f"the password in {what} must be percent-encoded ({ENCODINGS}); it is not shown here"
        )


def url_password(url: str) -> str | None:
    """The password as written in `url` (and unescaped), to scrub from texts that may echo it."""
    span = _password_span(url)
    return None if span is None else unquote(url[span[0] : span[1]])


# SQLAlchemy reads `postgres://` and `postgresql://` as psycopg2, which KneeGuard does not ship.
DRIVERLESS = {"postgres", "postgresql"}
DRIVER_HINT = "PostgreSQL URLs start with postgresql+psycopg:// (the driver KneeGuard uses)"


def check_driver(url: str) -> None:
    """Raise `ValueError` for a PostgreSQL URL that names no driver (or the wrong scheme)."""
    scheme = url.partition("://")[0].lower()
    if scheme in DRIVERLESS:
        raise ValueError(f"{scheme}:// names no driver; {DRIVER_HINT}")
