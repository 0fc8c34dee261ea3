"""Parsing untrusted XML, and writing XML documents whose texts stay exactly as given.

Safety: XML is parsed without DTDs, entities or network access, and any DOCTYPE is refused
(:func:`parse_xml`). Documents are written with a declaration and indented structure; elements
that hold text (paragraphs, choices, values, table cells) are never indented, so their text is
read back exactly (:func:`indent`, :func:`to_bytes`).
"""

from __future__ import annotations

import re

from lxml import etree

from item_bank.interchange.records import Problems

XSI_NS = "http://www.w3.org/2001/XMLSchema-instance"
# elements whose content is text we write exactly: never indented
_TEXT_HOLDERS = {"p", "qti-simple-choice", "simpleChoice", "qti-value", "value", "img", "object",
                 "th", "td"}


def parse_xml(data: bytes, source: str, problems: Problems) -> etree._Element | None:
    """Parse untrusted XML: no DTD, no entities, no network; a DOCTYPE is refused."""
    prefix = f"{source}: " if source else ""
    doctype = re.search(rb"<!(DOCTYPE|ENTITY)", data)
    if doctype:
        line = data.count(b"\n", 0, doctype.start()) + 1
        problems.add(
            f"{prefix}line {line}: a DOCTYPE or ENTITY declaration is not allowed",
            line=line,
            source=source or None,
        )
        return None
    parser = etree.XMLParser(
        resolve_entities=False,
        no_network=True,
        huge_tree=False,
        load_dtd=False,
        dtd_validation=False,
    )
    try:
        root = etree.fromstring(data, parser)
    except etree.XMLSyntaxError as exc:
        line = exc.lineno or None
        problems.add(
            f"{prefix}malformed XML at line {line}: {exc.msg}", line=line, source=source or None
        )
        return None
    if root.getroottree().docinfo.internalDTD is not None or root.getroottree().docinfo.doctype:
        problems.add(f"{prefix}a DOCTYPE declaration is not allowed", line=1, source=source or None)
        return None
    return root


def indent(el: etree._Element, level: int = 0) -> None:
    """Indent structural elements only, so that text content stays exactly as written."""
    children = [c for c in el if isinstance(c.tag, str)]
    if not children or etree.QName(el).localname in _TEXT_HOLDERS:
        return
    el.text = "\n" + "  " * (level + 1)
    for child in children:
        indent(child, level + 1)
        child.tail = "\n" + "  " * (level + 1)
    children[-1].tail = "\n" + "  " * level


def to_bytes(root: etree._Element) -> bytes:
    """The document as UTF-8 bytes with an XML declaration and a final line break."""
    body = etree.tostring(root, xml_declaration=False, encoding="UTF-8")
    return b'<?xml version="1.0" encoding="UTF-8"?>\n' + body + b"\n"


def local_name(el: etree._Element) -> str:
    """The element's name without its namespace; ``""`` for comments and processing
    instructions."""
    return etree.QName(el).localname if isinstance(el.tag, str) else ""
