"""The service's log format, which no logged value can forge.

A value that reaches a log line (a topic, a schema name, an error from a payload) may come from a
device. A newline in it would start what looks like a record of its own; a carriage return, an
escape sequence or a bidirectional override would hide or reorder text on a terminal. So every
record's message is written with C0 and C1 control characters, DEL, the Unicode line and
paragraph separators and the bidirectional controls escaped (`\\x0a`, `\\u202e`), and the lines of
a traceback are indented: a line at column 0 always starts a record.
"""

from __future__ import annotations

import logging
import re
import sys

_UNSAFE = re.compile("[\x00-\x1f\x7f-\x9f\u061c\u200e\u200f\u2028\u2029\u202a-\u202e\u2066-\u2069]")
FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
CONTINUATION = "    "


def _escape(match: re.Match[str]) -> str:
    code = ord(match.group())
    return f"\\x{code:02x}" if code <= 0xFF else f"\\u{code:04x}"


def escape_controls(text: str) -> str:
    """`text` with every control, separator and bidirectional character escaped."""
    return _UNSAFE.sub(_escape, text)


def _indented(text: str) -> str:
    return "\n".join(CONTINUATION + escape_controls(line) for line in text.split("\n"))


class SafeFormatter(logging.Formatter):
    """A formatter whose records are one line each, plus indented traceback lines."""

    def formatMessage(self, record: logging.LogRecord) -> str:  # noqa: N802 - logging's API
        record.message = escape_controls(record.message)
        return super().formatMessage(record)

    def formatException(self, ei: logging._SysExcInfoType) -> str:  # noqa: N802
        return _indented(super().formatException(ei))

    def formatStack(self, stack_info: str) -> str:  # noqa: N802
        return _indented(super().formatStack(stack_info))


def configure_logging(level: str) -> None:
    """Log records at `level` and above to stderr, through `SafeFormatter`."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(SafeFormatter(FORMAT))
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level.upper())
    logging.getLogger("alembic").setLevel(logging.WARNING)
