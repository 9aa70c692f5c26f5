"""Device credentials on the broker: mosquitto's password file, the ACL and the reload.

A device's MQTT user name is `ATHLETE_ID.DEVICE_ID` ("." cannot occur in an id). Its password is
random, printed once by `kneeguard device add` and stored only as a mosquitto PBKDF2-SHA512 hash.
The ACL file keeps what the operator wrote around a managed section, which is rewritten from the
registry's devices on every change, so the ACL always equals the database.

Nothing here logs or returns a password except `generate_password` and `BrokerCredentials.issue`.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import fcntl
import hashlib
import hmac
import os
import secrets
import signal
import tempfile
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

from contract.topics import ID_PATTERN, Topics

ACL_BEGIN = "# --- devices (managed by kneeguard device add/revoke) ---"
ACL_END = "# --- end of devices ---"

# mosquitto 2.0's own format: $7$ITERATIONS$base64(salt)$base64(PBKDF2-HMAC-SHA512). Iterations
# only slow down guessing a weak password; device passwords carry 256 random bits, so mosquitto's
# default of 101 (paid on every connect) is kept.
HASH_ID = "7"
DEFAULT_ITERATIONS = 101
SALT_BYTES = 12
PASSWORD_BYTES = 32


DeviceKeys = Iterable[tuple[str, str]]
# The devices an ACL holds: (athlete id, device id) pairs, or a function reading them when the
# ACL is written, so concurrent commands cannot write an ACL from a stale list.
Devices = DeviceKeys | Callable[[], DeviceKeys]


class CredentialsError(RuntimeError):
    """A credentials file cannot be read or written, or the broker cannot be reloaded."""


@dataclass(frozen=True, slots=True)
class DeviceCredentials:
    """What a device needs to connect. `password` exists only until it is printed."""

    username: str
    password: str

    def __repr__(self) -> str:
        return f"DeviceCredentials(username={self.username!r}, password=<hidden>)"


def device_username(athlete_id: str, device_id: str) -> str:
    for value in (athlete_id, device_id):
        if not ID_PATTERN.fullmatch(value):
            raise CredentialsError(f"invalid id {value[:80]!r} for a broker user name")
    return f"{athlete_id}.{device_id}"


def generate_password() -> str:
    """A random password of 43 URL-safe characters (256 bits)."""
    return secrets.token_urlsafe(PASSWORD_BYTES)


def hash_password(
    password: str, *, iterations: int = DEFAULT_ITERATIONS, salt: bytes | None = None
) -> str:
    """The password in mosquitto's password-file format (`$7$...`)."""
    if iterations < 1:
        raise ValueError("iterations must be positive")
    salt = secrets.token_bytes(SALT_BYTES) if salt is None else salt
    digest = hashlib.pbkdf2_hmac("sha512", password.encode(), salt, iterations)
    return f"${HASH_ID}${iterations}${_b64(salt)}${_b64(digest)}"


def verify_password(password: str, encoded: str) -> bool:
    """Whether `password` matches a `$7$` entry (as mosquitto would decide)."""
    parts = encoded.split("$")
    if len(parts) != 5 or parts[0] or parts[1] != HASH_ID or not parts[2].isdigit():
        return False
    try:
        salt = base64.b64decode(parts[3], validate=True)
        expected = base64.b64decode(parts[4], validate=True)
    except (binascii.Error, ValueError):
        return False
    digest = hashlib.pbkdf2_hmac("sha512", password.encode(), salt, int(parts[2]))
    return hmac.compare_digest(digest, expected)


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


# --- password file --------------------------------------------------------------------------


def read_password_entries(path: Path) -> dict[str, str]:
    """User name to hash, from a mosquitto password file (empty if it does not exist)."""
    entries: dict[str, str] = {}
    for line in _read_lines(path):
        user, sep, encoded = line.partition(":")
        if sep and user:
            entries[user] = encoded
    return entries


def set_password(path: Path, username: str, password: str) -> None:
    """Add or replace `username`'s entry, keeping every other line."""
    if not username or any(ch in username for ch in ":\r\n") or username.startswith("#"):
        raise CredentialsError(f"invalid broker user name {username[:80]!r}")
    entry = f"{username}:{hash_password(password)}"
    with _locked(path):
        lines = [line for line in _read_lines(path) if not _is_user_line(line, username)]
        _write_atomically(path, [*lines, entry], default_mode=0o600, private=True)


def remove_password(path: Path, username: str) -> bool:
    """Remove `username`'s entry; False if there was none."""
    with _locked(path):
        lines = _read_lines(path)
        kept = [line for line in lines if not _is_user_line(line, username)]
        if len(kept) == len(lines):
            return False
        _write_atomically(path, kept, default_mode=0o600, private=True)
        return True


def _is_user_line(line: str, username: str) -> bool:
    return line.startswith(f"{username}:")


# --- ACL ------------------------------------------------------------------------------------


def device_acl_block(topics: Topics, athlete_id: str, device_id: str) -> list[str]:
    """A device may publish its own runs and check-ins and read its ack, prompt and alerts."""
    return [
        f"user {device_username(athlete_id, device_id)}",
        *(f"topic write {topic}" for topic in topics.device_writes(athlete_id, device_id)),
        *(f"topic read {topic}" for topic in topics.device_reads(athlete_id, device_id)),
    ]


def render_acl(existing: str, topics: Topics, devices: DeviceKeys) -> str:
    """`existing` with its managed section replaced by one block per (athlete, device).

    Lines before `ACL_BEGIN` and after `ACL_END` are kept as they are; a file without the markers
    gets the managed section appended at its end.
    """
    if any(ch in topics.prefix for ch in "\r\n\t ") or not topics.prefix.isprintable():
        raise CredentialsError("the topic prefix cannot be written to an ACL file")
    lines = existing.splitlines()
    if ACL_BEGIN in lines:
        start = lines.index(ACL_BEGIN)
        head = lines[:start]
        rest = lines[start + 1 :]
        tail = rest[rest.index(ACL_END) + 1 :] if ACL_END in rest else []
    else:
        head, tail = lines, []
        if head and head[-1].strip():
            head.append("")
    managed = [ACL_BEGIN]
    for athlete_id, device_id in sorted(set(devices)):
        managed += ["", *device_acl_block(topics, athlete_id, device_id)]
    managed += ["", ACL_END]
    return "\n".join([*head, *managed, *tail]) + "\n"


def write_acl(path: Path, topics: Topics, devices: Devices) -> None:
    """Rewrite the managed section of the ACL file at `path`, which must exist: its static part
    (the service account) comes from deploy/mosquitto/acl."""
    with _locked(path):
        if not path.exists():
            raise CredentialsError(
                f"ACL file {path} does not exist; install deploy/mosquitto/acl there first"
            )
        text = "\n".join(_read_lines(path))
        rendered = render_acl(text, topics, devices() if callable(devices) else devices)
        _write_atomically(path, rendered.splitlines(), default_mode=0o640)


# --- reload ---------------------------------------------------------------------------------


def reload_broker(pid_file: Path) -> int:
    """Send SIGHUP to the mosquitto whose pid is in `pid_file`: it re-reads the password and ACL
    files. Returns the pid."""
    try:
        pid = int(pid_file.read_text().strip())
    except (OSError, ValueError) as exc:
        raise CredentialsError(f"cannot read the broker's pid from {pid_file}: {exc}") from None
    if pid <= 1:
        raise CredentialsError(f"{pid_file} holds no usable pid")
    try:
        os.kill(pid, signal.SIGHUP)
    except OSError as exc:
        raise CredentialsError(f"cannot signal the broker (pid {pid}): {exc.strerror}") from None
    return pid


# --- the whole change -------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class BrokerCredentials:
    """The broker files one installation manages (from KNEEGUARD_MQTT_* settings).

    `devices` is every registered (athlete id, device id) the ACL must hold after the change, or
    a function returning them, called under the ACL file's lock.
    """

    password_file: Path
    acl_file: Path | None
    pid_file: Path | None
    topics: Topics

    def issue(self, athlete_id: str, device_id: str, devices: Devices) -> DeviceCredentials:
        """New credentials for a registered device; replaces any it had."""
        credentials = DeviceCredentials(device_username(athlete_id, device_id), generate_password())
        set_password(self.password_file, credentials.username, credentials.password)
        self.write_acl(devices)
        return credentials

    def revoke(self, athlete_id: str, device_id: str, devices: Devices) -> bool:
        """Remove a device's password entry and rewrite the ACL from the remaining `devices`;
        False if the password file had no entry for it."""
        removed = remove_password(self.password_file, device_username(athlete_id, device_id))
        self.write_acl(devices)
        return removed

    def write_acl(self, devices: Devices) -> None:
        if self.acl_file is not None:
            write_acl(self.acl_file, self.topics, devices)

    def reload(self) -> bool:
        """SIGHUP the broker if a pid file is configured; False if there is none to signal."""
        if self.pid_file is None:
            return False
        reload_broker(self.pid_file)
        return True


# --- files ----------------------------------------------------------------------------------


def _read_lines(path: Path) -> list[str]:
    try:
        return path.read_text(encoding="utf-8").splitlines()
    except FileNotFoundError:
        return []
    except (OSError, UnicodeDecodeError) as exc:
        raise CredentialsError(f"cannot read {path}: {exc}") from None


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    """Serialise read-modify-write of `path` between concurrent commands."""
    lock_path = path.with_name(f".{path.name}.lock")
    try:
        fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o600)
    except OSError as exc:
        raise CredentialsError(f"cannot lock {path}: {exc.strerror}") from None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


def _write_atomically(
    path: Path, lines: list[str], *, default_mode: int, private: bool = False
) -> None:
    """Replace `path` with `lines` through a temporary file in the same directory, keeping the
    old file's owner and mode (a password file: its owner's only, 0600 at most)."""
    try:
        old = path.stat()
        mode, owner = old.st_mode & 0o777, (old.st_uid, old.st_gid)
    except FileNotFoundError:
        mode, owner = default_mode, None
    if private:
        mode &= 0o600
    content = "".join(f"{line}\n" for line in lines)
    try:
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    except OSError as exc:
        raise CredentialsError(f"cannot write {path}: {exc.strerror}") from None
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            os.fchmod(handle.fileno(), mode)
            if owner is not None and owner != (os.geteuid(), os.getegid()):
                # Root editing a broker's file: keep it readable by the broker's user.
                with contextlib.suppress(PermissionError):
                    os.fchown(handle.fileno(), *owner)
            handle.write(content)
            handle.flush()
            os.fsync(handle.fileno())
        Path(tmp).replace(path)
    except OSError as exc:
        with contextlib.suppress(OSError):
            Path(tmp).unlink()
        raise CredentialsError(f"cannot write {path}: {exc.strerror or exc}") from None
