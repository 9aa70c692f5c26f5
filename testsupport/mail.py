"""The email of a delivery built with the standard library's `EmailMessage`, as KneeGuard built
it before it wrote the wire form itself (`notifier.email.build_email`): the oracle the tests
compare that wire form with, and the messages the benchmarks' bare smtplib sessions send."""

from __future__ import annotations

from datetime import UTC, datetime
from email.headerregistry import Address
from email.message import EmailMessage
from email.policy import default as default_policy
from email.utils import format_datetime, make_msgid, parseaddr

from notifier.base import Message, Recipient


def stdlib_email(
    recipient: Recipient, message: Message, mail_from: str, *, now: datetime | None = None
) -> EmailMessage:
    """The same headers, parts and images as `build_email`, made by `EmailMessage`."""
    email = EmailMessage(policy=default_policy)
    email["From"] = mail_from
    email["To"] = Address(display_name=recipient.name, addr_spec=recipient.email)
    email["Subject"] = message.subject
    email["Date"] = format_datetime(now or datetime.now(UTC))
    domain = parseaddr(mail_from)[1].rpartition("@")[2] or "kneeguard.invalid"
    email["Message-ID"] = (
        f"<{message.reference}@{domain}>"
        if message.reference is not None
        else make_msgid(domain=domain)
    )
    email["Auto-Submitted"] = "auto-generated"
    email["X-Auto-Response-Suppress"] = "All"
    email.set_content(message.text)
    if message.html is not None:
        email.add_alternative(message.html, subtype="html")
        if message.images:
            html_part = email.get_body(preferencelist=("html",))
            assert html_part is not None
            for image in message.images:
                html_part.add_related(
                    image.data, maintype="image", subtype=image.subtype, cid=f"<{image.cid}>"
                )
    return email
