"""Untrusted XML (GPX and TCX uploads) is parsed only without a DTD.

GPX and TCX never need one, and a DTD is what entity-expansion ("billion laughs") and external
entity attacks hide in; defusedxml refuses it before any entity is expanded.
"""

from __future__ import annotations

from xml.etree.ElementTree import Element, ParseError

from defusedxml import DefusedXmlException
from defusedxml.ElementTree import fromstring

from ingest.files.model import FileRefusedError


def parse_xml(content: bytes, kind: str) -> Element:
    """The document's root element; raises `FileRefusedError` for invalid XML or any DTD."""
    try:
        return fromstring(content, forbid_dtd=True)
    except DefusedXmlException:
        raise FileRefusedError(f"{kind} file with a DTD or entities (not allowed)") from None
    except ParseError as exc:
        line, column = exc.position
        raise FileRefusedError(f"not valid {kind} XML (line {line}, column {column})") from None


def local(tag: str) -> str:
    """An element's name without its namespace."""
    return tag.rpartition("}")[2]
