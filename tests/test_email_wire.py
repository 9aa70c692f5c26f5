"""The email's wire form (`notifier.email.build_email`, written as bytes) against the standard
library's `EmailMessage` build of the same delivery (`testsupport.mail.stdlib_email`): parsed
back, both say the same thing, header by header and part by part, for any text."""

from __future__ import annotations

import email
import re
from datetime import UTC, datetime
from email.message import EmailMessage
from email.policy import SMTP
from email.policy import default as default_policy
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from notifier.base import InlineImage, Message, Recipient
from notifier.email import build_email
from testsupport.mail import stdlib_email

MAIL_FROM = "KneeGuard <alerts@kneeguard.example>"
NOW = datetime(2026, 11, 2, 7, 5, tzinfo=UTC)
HEADERS = ("From", "Subject", "Date", "Message-ID", "Auto-Submitted", "X-Auto-Response-Suppress")

# Text as runners' names, notes and rendered alerts may hold it: any character but the
# surrogates UTF-8 cannot encode, with the line breaks, dots, spaces and long lines that stress
# an encoder written by hand.
texts = st.lists(
    st.one_of(
        st.characters(codec="utf-8"),
        st.sampled_from(["\n", "\r\n", "\r", ".", " ", "\t", "=", "-", "From ", "=_"]),
        st.builds(
            lambda word, n: (word + " ") * n, st.text(min_size=1, max_size=12), st.integers(1, 40)
        ),
    ),
    max_size=60,
).map("".join)
one_line = texts.filter(lambda s: "\r" not in s and "\n" not in s)
names = st.text(st.characters(exclude_categories=("Cs", "Cc")), max_size=60) | st.sampled_from(
    ["Ann Rünner", "Smith, John", 'Al "Bo" Co', "O'Neil", "李 小龙", ""]
)
addresses = st.sampled_from(["ann@example.org", "a.b+tag@sub.example.com", "x@exämple.org"])
images = st.lists(
    st.builds(
        InlineImage,
        cid=st.from_regex(r"[a-z0-9]{1,12}@kneeguard\.example", fullmatch=True),
        data=st.binary(max_size=300),
        subtype=st.sampled_from(["png", "svg+xml", "jpeg"]),
    ),
    max_size=3,
)


def parsed(raw: bytes) -> EmailMessage:
    message = email.message_from_bytes(raw, policy=default_policy)
    assert isinstance(message, EmailMessage)
    return message


def outline(message: EmailMessage) -> list[tuple[str, Any, Any]]:
    """Every part in order: content type, content (text with its line breaks as `\n`, or
    bytes), Content-ID."""
    return [
        (part.get_content_type(), _content(part), part["Content-ID"]) for part in message.walk()
    ]


def _content(part: EmailMessage) -> Any:
    if part.is_multipart():
        return None
    content = part.get_content()
    return content.replace("\r\n", "\n") if isinstance(content, str) else content


def both(
    recipient: Recipient, message: Message
) -> tuple[EmailMessage, EmailMessage, EmailMessage, bytes]:
    """The wire form parsed, the standard library's build flattened as for SMTP and parsed, and
    that build flattened as for SMTPUTF8 (as `send_message` does for an internationalized
    address) and parsed, and the wire form's bytes."""
    raw = build_email(recipient, message, MAIL_FROM, now=NOW)
    reference = stdlib_email(recipient, message, MAIL_FROM, now=NOW)
    return (
        parsed(raw),
        parsed(reference.as_bytes(policy=SMTP)),
        parsed(reference.as_bytes(policy=SMTP.clone(utf8=True))),
        raw,
    )


@settings(max_examples=300)
@given(
    subject=one_line,
    name=names,
    address=addresses,
    text=texts,
    html=st.none() | texts,
    pictures=images,
    reference=st.none()
    | st.from_regex(r"kneeguard\.delivery\.[0-9]{1,9}\.[0-9]{1,16}", fullmatch=True),
)
def test_wire_form_says_what_the_standard_library_build_says(
    subject: str,
    name: str,
    address: str,
    text: str,
    html: str | None,
    pictures: list[InlineImage],
    reference: str | None,
) -> None:
    recipient = Recipient(kind="coach", id="c1", name=name, email=address, timezone="UTC")
    message = Message(
        subject=subject, text=text, html=html, images=tuple(pictures), reference=reference
    )
    try:
        reference_email = stdlib_email(recipient, message, MAIL_FROM, now=NOW)
    except ValueError:
        with pytest.raises(ValueError):
            build_email(recipient, message, MAIL_FROM, now=NOW)
        return
    del reference_email
    mine, theirs, theirs_utf8, raw = both(recipient, message)
    for header in HEADERS:
        if reference is None and header == "Message-ID":
            continue  # a new id each time
        assert mine[header] == theirs[header], header
    # An internationalized address is sent with SMTPUTF8 and so raw in the To header.
    mine_to = mine["To"].addresses
    theirs_to = (theirs if address.isascii() else theirs_utf8)["To"].addresses
    assert [(a.display_name, a.addr_spec) for a in mine_to] == [
        (a.display_name, a.addr_spec) for a in theirs_to
    ]
    assert outline(mine) == outline(theirs)
    assert not mine.defects and all(not part.defects for part in mine.walk())
    # On the wire: CRLF line breaks only, no line over 998 octets, 7-bit unless the address
    # needs SMTPUTF8.
    assert b"\r" not in raw.replace(b"\r\n", b"") and b"\n" not in raw.replace(b"\r\n", b"")
    assert max(len(line) for line in raw.split(b"\r\n")) <= 998
    if address.isascii():
        assert raw.isascii()


@pytest.mark.parametrize(
    "field", ["subject", "name", "email", "reference"], ids=lambda field: f"line break in {field}"
)
def test_a_header_with_a_line_break_is_refused(field: str) -> None:
    values = {"subject": "Hi", "name": "Ann", "email": "ann@example.org", "reference": "r.1"}
    values[field] += "\r\nBcc: victim@example.org"
    recipient = Recipient(
        kind="athlete", id="a", name=values["name"], email=values["email"], timezone="UTC"
    )
    message = Message(subject=values["subject"], text="x", reference=values["reference"])
    with pytest.raises(ValueError):
        build_email(recipient, message, MAIL_FROM)


def test_an_image_subtype_that_is_not_a_token_is_refused() -> None:
    recipient = Recipient(kind="coach", id="c", name="C", email="c@example.org", timezone="UTC")
    image = InlineImage(cid="a@b", data=b"x", subtype='png"\r\nX-Evil: 1')
    with pytest.raises(ValueError, match="image subtype"):
        build_email(
            recipient, Message(subject="s", text="t", html="<p>", images=(image,)), MAIL_FROM
        )


def test_boundaries_differ_between_parts_and_emails() -> None:
    recipient = Recipient(kind="coach", id="c", name="C", email="c@example.org", timezone="UTC")
    message = Message(
        subject="s", text="t", html="<p>", images=(InlineImage(cid="a@b", data=b"x"),)
    )
    boundaries = [
        re.findall(rb'boundary="([^"]+)"', build_email(recipient, message, MAIL_FROM))
        for _ in range(2)
    ]
    assert all(len(found) == 2 for found in boundaries)
    assert len(set(boundaries[0] + boundaries[1])) == 4
