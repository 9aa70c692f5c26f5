"""Where a writer's backlog goes once its queue holds `max_queued_bytes`: a file on disk.

Under a long overload (a club's morning sync, a device replaying a week, a slow database) the
network thread keeps reading, so that check-ins sharing the session and the answers' PUBACKs are
never held behind runs, and the writer cannot keep up: the backlog had to be held somewhere, and
held in memory it grew with the overload (302,545 messages, 268 MB of payloads, in a
one-session service at 1.5 times its ingest rate, docs/BENCHMARKS.md). Past the bound, messages
are appended to this file instead and read back in order; they are acknowledged to the broker
only once stored, as before, so a crash loses nothing: the broker sends them again.

The file is anonymous (`O_TMPFILE` where the system has it: no name, so nothing is left behind
by a crash) and readable by its owner only; it is emptied whenever it is drained. Records are
written and read with `pwrite`/`pread` at offsets kept here, under one lock.
"""

from __future__ import annotations

import os
import struct
import tempfile
import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path

from ingest.messages import Inbound

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MICROSECOND = timedelta(microseconds=1)

# topic length, payload length, mid, qos, retain, received_at (µs since the epoch)
_HEAD = struct.Struct("<HIIBBq")
_READ_CHUNK = 1024 * 1024


class SpillFile:
    """A FIFO of inbound messages in an anonymous file: `put` from one thread, `take` from
    another."""

    def __init__(self, directory: str | None = None) -> None:
        self._directory = directory
        self._fd: int | None = None
        self._lock = threading.Lock()
        self._write_at = 0
        self._read_at = 0
        self._decoded_to = 0  # records before this offset are taken or in `_ahead`
        self._count = 0
        # Read ahead and not yet taken: (offset after the record, message).
        self._ahead: list[tuple[int, Inbound]] = []

    def __len__(self) -> int:
        return self._count

    @property
    def size(self) -> int:
        """Bytes held on disk and not yet taken."""
        with self._lock:
            return self._write_at - self._read_at

    def put(self, message: Inbound) -> None:
        topic = message.topic.encode("utf-8")
        micros = (message.received_at - _EPOCH) // _MICROSECOND
        head = _HEAD.pack(
            len(topic), len(message.payload), message.mid, message.qos, message.retain, micros
        )
        record = head + topic + message.payload
        with self._lock:
            fd = self._open()
            written = os.pwrite(fd, record, self._write_at)
            if written != len(record):
                raise OSError(f"short write to the spill file: {written} of {len(record)} bytes")
            self._write_at += written
            self._count += 1

    def take(self, limit: int) -> list[Inbound]:
        """Up to `limit` messages, oldest first; empty when the file holds none."""
        with self._lock:
            while len(self._ahead) < limit and self._decoded_to < self._write_at:
                self._read_ahead()
            taken, self._ahead = self._ahead[:limit], self._ahead[limit:]
            if taken:
                self._read_at = taken[-1][0]
                self._count -= len(taken)
            if self._count == 0 and self._fd is not None:
                # Drained: start again at the beginning, and give the space back.
                os.ftruncate(self._fd, 0)
                self._write_at = self._read_at = self._decoded_to = 0
                self._ahead = []
            return [message for _, message in taken]

    def close(self) -> None:
        with self._lock:
            if self._fd is not None:
                os.close(self._fd)
                self._fd = None
            self._write_at = self._read_at = self._decoded_to = self._count = 0
            self._ahead = []

    def _open(self) -> int:
        if self._fd is None:
            directory = self._directory or tempfile.gettempdir()
            try:
                self._fd = os.open(directory, os.O_TMPFILE | os.O_RDWR, 0o600)
            except (AttributeError, OSError):
                # No O_TMPFILE here: a named file, unlinked at once.
                handle, path = tempfile.mkstemp(prefix="kneeguard-spill-", dir=directory)
                Path(path).unlink()
                self._fd = handle
        return self._fd

    def _read_ahead(self) -> None:
        """Decode the records after `_decoded_to`: a chunk's worth, and at least one."""
        assert self._fd is not None
        offset = self._decoded_to
        data = os.pread(self._fd, min(_READ_CHUNK, self._write_at - offset), offset)
        at = 0
        while at + _HEAD.size <= len(data):
            topic_len, payload_len, mid, qos, retain, micros = _HEAD.unpack_from(data, at)
            size = _HEAD.size + topic_len + payload_len
            if at + size > len(data):
                if at == 0:  # one record larger than the chunk
                    data = os.pread(self._fd, size, offset)
                    continue
                break
            body = at + _HEAD.size
            message = Inbound(
                topic=data[body : body + topic_len].decode("utf-8"),
                payload=data[body + topic_len : at + size],
                mid=mid,
                qos=qos,
                received_at=_EPOCH + micros * _MICROSECOND,
                retain=bool(retain),
            )
            at += size
            self._ahead.append((offset + at, message))
        self._decoded_to = offset + at
