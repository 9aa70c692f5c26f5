"""Hostile input through the real broker: thousands of hypothesis-generated payloads reach a
running `kneeguard run` (SQLite) interleaved with valid messages.

Generated deterministically (hypothesis with `derandomize=True`, generate phase only; the
values are collected first and then published):

- JSON mutants of valid run and check-in payloads: fields replaced by values of the wrong type,
  huge numbers (1e308, -1e308, 10**400 as an integer literal, 1e400, NaN, Infinity), odd unicode
  (escaped lone surrogates, RTL marks, emoji, NUL escapes, BOM, noncharacters), wrong nesting
  (values wrapped in lists or objects, deep nesting), deleted fields, whole-document swaps;
- raw byte garbage: random bytes, valid payloads truncated or with bytes flipped, empty and
  oversized payloads.

The service must never crash (process and ingest thread alive, still answering), keep its
memory bounded, answer every message once (`rejected` with a dead letter, or stored), and store
every valid message sent among them.
"""

from __future__ import annotations

import json
import random
import signal
import uuid as uuidlib
from collections import Counter
from collections.abc import Callable
from copy import deepcopy
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import pytest
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from sqlalchemy import select

from db.engine import make_engine
from db.models import Checkin, DeadLetter, Run
from testsupport import (
    CHECKIN_TEMPLATE,
    CHECKIN_TOPIC,
    RUN_TEMPLATE,
    RUN_TOPIC,
    Mosquitto,
    device_client,
    register,
    service,
    wait_until,
)

JSON_MUTANTS = 2500
GARBAGE = 2500
VALID = 1000
MEMORY_GROWTH_BOUND_MIB = 32

T = TypeVar("T")


# --- generating -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Raw:
    """A JSON token written as is: number literals json.dumps cannot produce."""

    text: str


HUGE_NUMBERS = [
    Raw("1e308"),
    Raw("-1e308"),
    Raw("1" + "0" * 400),  # 10**400 as an integer literal
    Raw("-" + "9" * 400),
    Raw("1e400"),
    Raw("-1e400"),
    Raw("1e-400"),
    Raw("NaN"),
    Raw("Infinity"),
    Raw("-Infinity"),
    Raw("-0"),
    Raw("0." + "0" * 300 + "1"),
    Raw("1" * 5000),  # beyond Python's default int-from-string limit
    1.7976931348623157e308,
    -1.7976931348623157e308,
    5e-324,
    2**63,
    -(2**63) - 1,
    2**64,
]

ODD_TEXT = [
    "\ud800",  # lone high surrogate: escaped as \ud800 in ASCII JSON
    "\udfff",  # lone low surrogate
    "\udc00/\ud83d",
    "\u202eevil\u202c",  # right-to-left override
    "\u200f\u200e\u061c",  # RTL/LTR/Arabic letter marks
    "🦵🏃\u200d♀️🔥",  # emoji with a zero-width joiner
    "\x00",
    "a\x00b",
    "\ufeff",  # byte order mark
    "\uffff\ufffe",  # noncharacters
    "e\u0301\u0301\u0301",  # stacked combining marks
    "\U0010ffff",
    "\\u0000",
    "running\x00",
    "km\u200b",  # zero-width space
]

odd_text = st.one_of(
    st.sampled_from(ODD_TEXT),
    st.lists(st.sampled_from([*ODD_TEXT, "a", " ", "\n", '"', "\\"]), max_size=6).map("".join),
    st.text(st.characters(categories=["Cs", "Cf", "Mn", "Co", "Zl", "Zp"]), max_size=8),
    st.text(max_size=20),
)

scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.integers(min_value=-(10**400), max_value=10**400),
    st.floats(allow_nan=False, allow_infinity=False),
    st.sampled_from(HUGE_NUMBERS),
    odd_text,
)

json_values = st.recursive(
    scalars,
    lambda children: st.one_of(
        st.lists(children, max_size=4),
        st.dictionaries(st.one_of(st.text(max_size=6), odd_text), children, max_size=4),
    ),
    max_leaves=10,
)


def to_json(value: Any, ascii: bool) -> str:
    """JSON text of `value`, with `Raw` tokens as they are and any integer size."""
    if isinstance(value, Raw):
        return value.text
    if isinstance(value, dict):
        items = (f"{to_json(str(k), ascii)}:{to_json(v, ascii)}" for k, v in value.items())
        return "{" + ",".join(items) + "}"
    if isinstance(value, list):
        return "[" + ",".join(to_json(v, ascii) for v in value) + "]"
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    return json.dumps(value, ensure_ascii=ascii)


Path_ = tuple[str | int, ...]


def paths(value: Any, prefix: Path_ = ()) -> list[Path_]:
    """Every path to a value inside a payload template."""
    found: list[Path_] = []
    if isinstance(value, dict):
        for key, child in value.items():
            found.append((*prefix, key))
            found.extend(paths(child, (*prefix, key)))
    elif isinstance(value, list):
        for index, child in enumerate(value):
            found.append((*prefix, index))
            found.extend(paths(child, (*prefix, index)))
    return found


def nested(depth: int, leaf: Any, ascii: bool) -> Raw:
    """`leaf` wrapped `depth` times, alternating lists and objects (as text: no recursion)."""
    inner = to_json(leaf, ascii)
    opening = "".join("[" if level % 2 else '{"x":' for level in range(depth))
    closing = "".join("]" if level % 2 else "}" for level in reversed(range(depth)))
    return Raw(opening + inner + closing)


@dataclass(frozen=True)
class Mutation:
    path: Path_
    op: str
    value: Any


TEMPLATES = {"run": RUN_TEMPLATE, "checkin": CHECKIN_TEMPLATE}
PATHS = {kind: paths(template) for kind, template in TEMPLATES.items()}

mutation_ops = st.sampled_from(
    ["replace", "replace", "replace", "huge", "odd", "delete", "wrap_list", "wrap_object",
     "stringify", "deep"]
)  # fmt: skip


@st.composite
def mutations(draw: st.DrawFn, kind: str) -> Mutation:
    path = draw(st.sampled_from(PATHS[kind]))
    op = draw(mutation_ops)
    value: Any = None
    if op == "replace":
        value = draw(json_values)
    elif op == "huge":
        value = draw(st.sampled_from(HUGE_NUMBERS))
    elif op == "odd":
        value = draw(odd_text)
    elif op == "deep":
        value = draw(st.integers(1, 3000))
    return Mutation(path, op, value)


def holds(node: Any, key: str | int) -> bool:
    if isinstance(node, dict):
        return key in node
    return isinstance(node, list) and isinstance(key, int) and key < len(node)


def apply(document: Any, mutation: Mutation, ascii: bool) -> Any:
    *parents, last = mutation.path
    node = document
    for key in parents:
        if not holds(node, key):
            return document  # an earlier mutation removed the way there
        node = node[key]
    if not holds(node, last):
        return document
    current = node[last]
    if mutation.op == "delete":
        del node[last]
        return document
    replacement: Any
    if mutation.op in ("replace", "huge", "odd"):
        replacement = mutation.value
    elif mutation.op == "wrap_list":
        replacement = [current]
    elif mutation.op == "wrap_object":
        replacement = {"value": current}
    elif mutation.op == "stringify":
        replacement = to_json(current, ascii)
    else:  # deep
        replacement = nested(int(mutation.value), current, ascii)
    node[last] = replacement
    return document


@dataclass(frozen=True)
class Mutant:
    kind: str  # template used
    topic_kind: str  # topic it is published on (sometimes the other one)
    mutations: tuple[Mutation, ...]
    whole: Any  # replaces the whole document when not None
    ascii: bool
    suffix: str  # appended to the JSON text (trailing garbage or a second document)


@st.composite
def json_mutants(draw: st.DrawFn) -> Mutant:
    kind = draw(st.sampled_from(["run", "checkin"]))
    topic_kind = kind if draw(st.integers(0, 9)) else ("checkin" if kind == "run" else "run")
    muts = tuple(draw(st.lists(mutations(kind), min_size=1, max_size=3)))
    whole = draw(st.one_of(st.none(), st.none(), st.none(), st.none(), json_values))
    suffix = draw(st.sampled_from(["", "", "", "", " ", "}", "]", ",", "{}", "\x00", "//"]))
    return Mutant(kind, topic_kind, muts, whole, draw(st.booleans()), suffix)


def render_mutant(mutant: Mutant, uuid: str) -> tuple[str, bytes]:
    document: Any = deepcopy(TEMPLATES[mutant.kind])
    document["header"]["uuid"] = uuid
    for mutation in mutant.mutations:
        document = apply(document, mutation, mutant.ascii)
    if mutant.whole is not None:
        document = [document, mutant.whole] if isinstance(mutant.whole, list) else mutant.whole
    text = to_json(document, mutant.ascii) + mutant.suffix
    topic = RUN_TOPIC if mutant.topic_kind == "run" else CHECKIN_TOPIC
    return topic, text.encode("utf-8", "surrogatepass")


@dataclass(frozen=True)
class Garbage:
    kind: str
    style: str
    data: bytes
    cut: int
    flips: tuple[tuple[int, int], ...]
    repeat: int


@st.composite
def garbage(draw: st.DrawFn) -> Garbage:
    kind = draw(st.sampled_from(["run", "checkin"]))
    style = draw(st.sampled_from(["random", "random", "truncated", "flipped", "oversized"]))
    data = draw(st.binary(max_size=300))
    cut = draw(st.integers(0, 2000))
    flips = tuple(draw(st.lists(st.tuples(st.integers(0, 2000), st.integers(1, 255)), max_size=6)))
    return Garbage(kind, style, data, cut, flips, draw(st.integers(1, 4)))


def render_garbage(item: Garbage, uuid: str) -> tuple[str, bytes]:
    template = deepcopy(TEMPLATES[item.kind])
    template["header"]["uuid"] = uuid
    valid = json.dumps(template).encode()
    if item.style == "random":
        payload = item.data
    elif item.style == "truncated":
        payload = valid[: item.cut % len(valid)]
    elif item.style == "flipped":
        buffer = bytearray(valid)
        for position, xor in item.flips or ((item.cut, 0x80),):
            buffer[position % len(buffer)] ^= xor
        payload = bytes(buffer)
    else:  # over the 64 KiB limit
        payload = (item.data or b"\xff") * (70_000 // max(len(item.data), 1) + 1)
        payload = payload[: 65_537 * item.repeat]
    topic = RUN_TOPIC if item.kind == "run" else CHECKIN_TOPIC
    return topic, payload


def collect(strategy: st.SearchStrategy[T], count: int) -> list[T]:
    """`count` values of `strategy`, the same on every run."""
    drawn: list[T] = []

    @settings(
        max_examples=count,
        derandomize=True,
        database=None,
        phases=[Phase.generate],
        deadline=None,
        suppress_health_check=list(HealthCheck),
    )
    @given(strategy)
    def draw(value: T) -> None:
        drawn.append(value)

    draw()
    return drawn


# Cases every run must contain, whatever hypothesis draws.
def explicit_cases() -> list[Callable[[str], tuple[str, bytes]]]:
    def with_value(kind: str, path: Path_, value: Any, ascii: bool = True) -> Any:
        return lambda uuid: render_mutant(
            Mutant(kind, kind, (Mutation(path, "replace", value),), None, ascii, ""), uuid
        )

    cases: list[Callable[[str], tuple[str, bytes]]] = []
    for number in HUGE_NUMBERS:
        cases.append(with_value("run", ("body", "distance", "value"), number))
        cases.append(with_value("checkin", ("body", "pain_score"), number))
    for text in ODD_TEXT:
        for ascii in (True, False):
            cases.append(with_value("checkin", ("body", "note"), text, ascii))
            cases.append(with_value("run", ("header", "schema_id", "namespace"), text, ascii))
            cases.append(with_value("checkin", ("header", "source_creation_date_time"), text))
    cases.append(with_value("run", ("body",), [[[[{"distance": 1}]]]]))
    cases.append(lambda uuid: (RUN_TOPIC, b"[" * 60_000))
    cases.append(lambda uuid: (RUN_TOPIC, b"[" * 100_000))
    cases.append(lambda uuid: (RUN_TOPIC, b"{" + b'"a":{' * 20_000))
    cases.append(lambda uuid: (CHECKIN_TOPIC, b""))
    cases.append(lambda uuid: (CHECKIN_TOPIC, b"\xef\xbb\xbf{}"))
    cases.append(lambda uuid: (CHECKIN_TOPIC, b"null"))
    return cases


# --- running ----------------------------------------------------------------------------------


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError("no VmRSS")


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_fuzzed_payloads_never_crash_the_service_and_every_message_is_answered(
    db_url: str, broker: Mosquitto
) -> None:
    engine = make_engine(db_url)
    register(engine)
    engine.dispose()

    mutants = collect(json_mutants(), JSON_MUTANTS)
    junk = collect(garbage(), GARBAGE)
    assert len(mutants) >= JSON_MUTANTS * 0.9 and len(junk) >= GARBAGE * 0.9

    # Random (seeded) uuids: a byte flipped in one cannot turn it into another one sent.
    rng = random.Random(1752)

    def next_uuid() -> str:
        return str(uuidlib.UUID(int=rng.getrandbits(128), version=4))

    fuzz: list[tuple[str, bytes]] = [render_mutant(m, next_uuid()) for m in mutants]
    fuzz += [render_garbage(g, next_uuid()) for g in junk]
    fuzz += [case(next_uuid()) for case in explicit_cases()]
    valid: dict[str, tuple[str, bytes]] = {}
    for n in range(VALID):
        kind = "run" if n % 2 else "checkin"
        document = deepcopy(TEMPLATES[kind])
        uuid = next_uuid()
        document["header"]["uuid"] = uuid
        valid[uuid] = (RUN_TOPIC if kind == "run" else CHECKIN_TOPIC, json.dumps(document).encode())
    messages = fuzz + list(valid.values())
    rng.shuffle(messages)
    warmup, rest = messages[:1500], messages[1500:]

    # Every rejection is to be found as a dead letter here, so no flood limit applies.
    unlimited = {"KNEEGUARD_DEAD_LETTERS_PER_DEVICE_MINUTE": "1000000"}
    with service(db_url, broker.url, **unlimited) as proc, device_client(broker.port) as device:
        proc.wait_subscribed()
        pid = proc.process.pid

        def answered(n: int) -> Callable[[], bool]:
            # Stop waiting as soon as the answers are in, or the process or a thread has died.
            return lambda: (
                len(device.acks()) >= n
                or proc.process.poll() is not None
                or "Exception in thread" in proc.log
            )

        def unanswered(n: int) -> str:
            died = proc.log[proc.log.find("Exception in thread") :][:3000]
            return (
                f"{n - len(device.acks())} of {n} unanswered; exit code {proc.process.poll()}"
                f"\n{died or proc.log[-3000:]}"
            )

        device.publish_many(warmup)
        wait_until(answered(len(warmup)), 60)
        assert len(device.acks()) == len(warmup), unanswered(len(warmup))
        before = rss_kib(pid)
        device.publish_many(rest)
        wait_until(answered(len(messages)), 60)
        assert len(device.acks()) == len(messages), unanswered(len(messages))
        after = rss_kib(pid)

        # Still alive and still answering.
        probe = deepcopy(RUN_TEMPLATE)
        probe["header"]["uuid"] = str(uuidlib.uuid4())
        device.publish(RUN_TOPIC, probe)
        assert device.ack_for(probe["header"]["uuid"])["status"] == "accepted"
        acks = device.acks()[: len(messages)]
        assert proc.process.poll() is None
        proc.signal(signal.SIGTERM)
        assert proc.wait() == 0, proc.log[-3000:]

    assert "Traceback" not in proc.log, proc.log[proc.log.index("Traceback") - 500 :][:4000]
    growth_mib = (after - before) / 1024
    assert growth_mib < MEMORY_GROWTH_BOUND_MIB, f"RSS {before} -> {after} KiB"

    engine = make_engine(db_url)
    with engine.connect() as conn:
        stored = set(conn.execute(select(Run.uuid)).scalars())
        stored |= set(conn.execute(select(Checkin.uuid)).scalars())
        stored.discard(probe["header"]["uuid"])
        dead = list(conn.execute(select(DeadLetter.uuid, DeadLetter.topic)))
    engine.dispose()

    # Every message answered exactly once. (An answer may name a uuid that was not sent: a
    # flipped byte can turn one valid uuid into another.)
    assert len(acks) == len(messages)
    by_uuid = Counter(a["uuid"] for a in acks if a["uuid"] is not None)
    assert max(by_uuid.values()) == 1
    assert set(valid) <= set(by_uuid)
    statuses = Counter(a["status"] for a in acks)
    assert set(statuses) <= {"accepted", "rejected"}, statuses
    # ... and accounted for: stored once, or kept as a dead letter.
    assert len(stored) + len(dead) == len(messages)
    assert statuses["accepted"] == len(stored) and statuses["rejected"] == len(dead)
    accepted = {a["uuid"] for a in acks if a["status"] == "accepted"}
    assert accepted == stored
    rejected_with_uuid = {a["uuid"] for a in acks if a["status"] == "rejected" and a["uuid"]}
    assert rejected_with_uuid == {u for u, _ in dead if u is not None}
    # Every valid message among the fuzz is stored.
    assert set(valid) <= stored
    # Most fuzz is refused; what was accepted was a mutation that left the payload valid.
    assert statuses["rejected"] >= len(fuzz) * 0.8, statuses
