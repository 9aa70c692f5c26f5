"""Reading an activity file safely: size limits before reading, gzip with a cap, format sniffing.

The limits are part of the documented behaviour (docs/IMPORT.md): a file over `MAX_FILE_BYTES`
is refused from its size alone, before any of it is read, and a `.gz` file is decompressed in
chunks and refused as soon as its content passes `MAX_CONTENT_BYTES`, so a zip bomb costs at
most that much memory.
"""

from __future__ import annotations

import enum
import os
import stat
import zlib
from pathlib import Path
from typing import Final

from ingest.files.model import FileRefusedError

MAX_FILE_BYTES: Final = 64 * 1024 * 1024
MAX_CONTENT_BYTES: Final = 64 * 1024 * 1024
_CHUNK: Final = 1024 * 1024
GZIP_MAGIC: Final = b"\x1f\x8b"


class Format(enum.StrEnum):
    FIT = "FIT"
    GPX = "GPX"
    TCX = "TCX"


SUFFIXES: Final = {".fit": Format.FIT, ".gpx": Format.GPX, ".tcx": Format.TCX}


def mib(size: int) -> str:
    return f"{size / (1024 * 1024):.0f} MiB"


def read_file(path: Path) -> bytes:
    """The file's bytes, refusing anything but a regular file of at most `MAX_FILE_BYTES`."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except FileNotFoundError:
        raise FileRefusedError("no such file") from None
    except IsADirectoryError:
        raise FileRefusedError("is a directory") from None
    except PermissionError:
        raise FileRefusedError("permission denied") from None
    except OSError as exc:
        raise FileRefusedError(f"cannot be opened ({exc.strerror or type(exc).__name__})") from None
    try:
        info = os.fstat(fd)
        if stat.S_ISDIR(info.st_mode):
            raise FileRefusedError("is a directory")
        if not stat.S_ISREG(info.st_mode):
            raise FileRefusedError("not a regular file")
        if info.st_size > MAX_FILE_BYTES:
            raise FileRefusedError(
                f"file is {mib(info.st_size)}; the limit is {mib(MAX_FILE_BYTES)}"
            )
    except BaseException:
        os.close(fd)
        raise
    with os.fdopen(fd, "rb") as handle:
        # Read one byte more than allowed: a file that grew since fstat is still bounded.
        data = handle.read(MAX_FILE_BYTES + 1)
    check_size(data)
    return data


def check_size(data: bytes) -> None:
    if not data:
        raise FileRefusedError("empty file")
    if len(data) > MAX_FILE_BYTES:
        raise FileRefusedError(f"file is over the limit of {mib(MAX_FILE_BYTES)}")


def gunzip(data: bytes) -> bytes:
    """Decompress gzip data (several members too), refusing content over `MAX_CONTENT_BYTES`."""
    out = bytearray()
    rest = data
    while rest:
        decompressor = zlib.decompressobj(wbits=16 + zlib.MAX_WBITS)
        pending = rest
        while True:
            try:
                chunk = decompressor.decompress(pending, _CHUNK)
            except zlib.error:
                raise FileRefusedError("corrupt gzip data") from None
            out += chunk
            if len(out) > MAX_CONTENT_BYTES:
                raise FileRefusedError(
                    f"gzip content is larger than the limit of {mib(MAX_CONTENT_BYTES)}"
                )
            pending = decompressor.unconsumed_tail
            if decompressor.eof or (not pending and not chunk):
                break
        if not decompressor.eof:
            raise FileRefusedError("truncated gzip data")
        rest = decompressor.unused_data
        # Padding after the last member (some tools write zeros) is not another member.
        if not rest.strip(b"\x00"):
            break
    if not out:
        raise FileRefusedError("empty file (inside gzip)")
    return bytes(out)


def sniff(content: bytes, name: str) -> Format:
    """The format of uncompressed content, from its bytes (the file name only breaks a tie)."""
    if len(content) >= 12 and content[8:12] == b".FIT":
        return Format.FIT
    head = content[:4096].lstrip(b"\xef\xbb\xbf \t\r\n").lower()
    if head.startswith(b"<"):
        if b"<gpx" in head:
            return Format.GPX
        if b"<trainingcenterdatabase" in head:
            return Format.TCX
    suffix = Path(name.removesuffix(".gz").removesuffix(".GZ")).suffix.lower()
    if suffix in SUFFIXES and SUFFIXES[suffix] is not Format.FIT:
        return SUFFIXES[suffix]
    if suffix == ".fit":
        raise FileRefusedError("not a FIT file (no FIT file header)")
    raise FileRefusedError("not a FIT, GPX or TCX file")


def content_of(data: bytes, name: str) -> tuple[Format, bytes]:
    """The format and the uncompressed content of a file's bytes."""
    check_size(data)
    if data.startswith(GZIP_MAGIC):
        data = gunzip(data)
    return sniff(data, name), data


def is_activity_name(name: str) -> bool:
    """Whether a file in a folder is one to import: .fit, .gpx or .tcx, optionally .gz."""
    lowered = name.lower().removesuffix(".gz")
    return not name.startswith(".") and Path(lowered).suffix in SUFFIXES
