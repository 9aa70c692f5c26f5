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
gathered and written a chunk at a time (`pwrite`) and read back a chunk at a time (`pread`),
under one lock.
"""

from __future__ import annotations

import os
import struct
import tempfile
import threading
from collections import deque
from datetime import UTC, datetime, timedelta
from pathlib import Path

from ingest.messages import Inbound

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MICROSECOND = timedelta(microseconds=1)

# topic length, payload length, mid, qos, retain, received_at (µs since the epoch), connection
_HEAD = struct.Struct("<HIIBBqI")
_READ_CHUNK = 1024 * 1024
# Records are gathered and written this many bytes at a time: one system call for a few hundred
# messages on the network thread, not one each.
_WRITE_CHUNK = 256 * 1024


class SpillFile:
    """A FIFO of inbound messages in an anonymous file: `put` from one thread, `take` from
    another. The newest records wait in memory until `_WRITE_CHUNK` of them are gathered, and a
    `take` that finds nothing else reads them from there."""

    def __init__(self, directory: str | None = None) -> None:
        self._directory = directory
        self._fd: int | None = None
        self._lock = threading.Lock()
        self._written = 0  # bytes in the file
        self._decoded_to = 0  # the file's records before this offset are decoded
        self._pending: list[bytes] = []  # records not written yet, after the file's
        self._pending_size = 0
        self._ahead: deque[tuple[int, Inbound]] = deque()  # decoded, not taken: (size, message)
        self._count = 0
        self._held = 0

    def __len__(self) -> int:
        return self._count

    @property
    def size(self) -> int:
        """Bytes of the messages held and not yet taken."""
        with self._lock:
            return self._held

    def put(self, message: Inbound) -> None:
        topic = message.topic.encode("utf-8")
        micros = (message.received_at - _EPOCH) // _MICROSECOND
        head = _HEAD.pack(
            len(topic),
            len(message.payload),
            message.mid,
            message.qos,
            message.retain,
            micros,
            message.connection,
        )
        record = head + topic + message.payload
        with self._lock:
            self._pending.append(record)
            self._pending_size += len(record)
            if self._pending_size >= _WRITE_CHUNK:
                try:
                    self._flush()
                except OSError:
                    # This message is the caller's to keep; those gathered before stay here.
                    self._pending.pop()
                    self._pending_size -= len(record)
                    raise
            self._count += 1
            self._held += len(record)

    def take(self, limit: int) -> list[Inbound]:
        """Up to `limit` messages, oldest first; empty when none is held."""
        with self._lock:
            while len(self._ahead) < limit:
                if self._decoded_to < self._written:
                    self._read_ahead()
                elif self._pending:
                    data = b"".join(self._pending)
                    self._pending, self._pending_size = [], 0
                    self._ahead.extend(_records(data)[1])
                else:
                    break
            taken = [self._ahead.popleft() for _ in range(min(limit, len(self._ahead)))]
            self._count -= len(taken)
            self._held -= sum(size for size, _ in taken)
            if self._count == 0 and self._fd is not None and self._written:
                # Drained: start again at the beginning, and give the space back.
                os.ftruncate(self._fd, 0)
                self._written = self._decoded_to = 0
            return [message for _, message in taken]

    def close(self) -> None:
        with self._lock:
            if self._fd is not None:
                os.close(self._fd)
                self._fd = None
            self._written = self._decoded_to = self._count = self._held = 0
            self._pending, self._pending_size = [], 0
            self._ahead.clear()

    def _flush(self) -> None:
        data = memoryview(b"".join(self._pending))
        fd = self._open()
        done = 0
        while done < len(data):
            done += os.pwrite(fd, data[done:], self._written + done)
        self._written += done
        self._pending, self._pending_size = [], 0

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
        """Decode the file's records after `_decoded_to`: a chunk's worth, and at least one."""
        assert self._fd is not None
        offset = self._decoded_to
        data = os.pread(self._fd, min(_READ_CHUNK, self._written - offset), offset)
        consumed, records = _records(data)
        if not records:  # one record larger than the chunk
            size = _HEAD.size + sum(_HEAD.unpack_from(data)[:2])
            consumed, records = _records(os.pread(self._fd, size, offset))
        self._ahead.extend(records)
        self._decoded_to = offset + consumed


def _records(data: bytes) -> tuple[int, list[tuple[int, Inbound]]]:
    """The whole records at the start of `data`, and how many bytes they take."""
    records = []
    at = 0
    while at + _HEAD.size <= len(data):
        topic_len, payload_len, mid, qos, retain, micros, connection = _HEAD.unpack_from(data, at)
        size = _HEAD.size + topic_len + payload_len
        if at + size > len(data):
            break
        body = at + _HEAD.size
        message = Inbound(
            topic=data[body : body + topic_len].decode("utf-8"),
            payload=data[body + topic_len : at + size],
            mid=mid,
            qos=qos,
            received_at=_EPOCH + micros * _MICROSECOND,
            retain=bool(retain),
            connection=connection,
        )
        records.append((size, message))
        at += size
    return at, records
