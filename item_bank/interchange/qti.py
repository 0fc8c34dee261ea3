"""Single-choice items as QTI 3.0 ``qti-assessment-item`` or QTI 2.1/2.2 ``assessmentItem``.

- the stem is a ``<p>`` before the ``qti-choice-interaction`` (max-choices 1); line breaks in stems,
  options and rationales are written as ``<br/>``; choices are identified ``A, B, ... Z, AA, AB``;
- a table in a stem (a Markdown table, :mod:`item_bank.markup`) is written as QTI table markup
  (``table``, ``thead``, ``th scope="col"``, ``tbody``, ``td``; alignment as an ``align-right``
  class) between the ``<p>`` of the text before and after it; on import, a ``table`` (also inside
  a ``div``) becomes a Markdown table, and other tools' text is escaped so it shows literally;
- the key is the ``qti-correct-response`` of the ``RESPONSE`` declaration; scoring uses the
  standard ``match_correct`` response-processing template;
- the rationale is a ``<qti-rubric-block use="ext:rationale" view="scorer tutor">`` (QTI 2.1:
  ``<rubricBlock view="scorer tutor" class="cat-rationale">``), so candidates never see it;
- media references are ``<img src>`` (images) or ``<object data type>`` in a ``<div>`` after the
  stem; on import, every ``img``, ``object``, ``audio``, ``video`` and ``source`` reference counts;
- only single-choice items with text choices are read; any other interaction is refused, naming
  it;
- items written here carry ``tool-name="cat-engine"``; their texts are read back exactly. Texts of
  items from other tools are read with their whitespace collapsed (as a browser would show them),
  and the ``qti-prompt`` of the interaction counts as part of the stem.

A single item file (:func:`write_qti_item`) carries the content only; parameters travel as usage
data (:mod:`item_bank.interchange.usage_data`) and skill, tags and status in a package's manifest
(:mod:`item_bank.interchange.qti_package`), which also reads single item files.
"""

from __future__ import annotations

import mimetypes
import re
from collections.abc import Sequence
from dataclasses import dataclass

from lxml import etree

from item_bank.interchange.records import ItemRecord, Problems, check_records, record_problems
from item_bank.interchange.xml_io import XSI_NS, indent, local_name, to_bytes
from item_bank.markup import Table, escape_text, markdown_table, stem_blocks

QTI3_NS = "http://www.imsglobal.org/xsd/imsqtiasi_v3p0"
QTI21_NS = "http://www.imsglobal.org/xsd/imsqti_v2p1"
QTI22_NS = "http://www.imsglobal.org/xsd/imsqti_v2p2"
TOOL_NAME = "cat-engine"
TOOL_VERSION = "1"

_SCHEMA = {
    QTI3_NS: "https://purl.imsglobal.org/spec/qti/v3p0/schema/xsd/imsqti_asiv3p0_v1p0.xsd",
    QTI21_NS: "http://www.imsglobal.org/xsd/qti/qtiv2p1/imsqti_v2p1.xsd",
}
_MATCH_CORRECT = {
    "3.0": "https://purl.imsglobal.org/spec/qti/v3p0/rptemplates/match_correct.xml",
    "2.1": "http://www.imsglobal.org/question/qti_v2p1/rptemplates/match_correct",
}


# -- the two dialects ---------------------------------------------------------------------------


@dataclass(frozen=True)
class _Dialect:
    """Element and attribute names of QTI 3.0 (kebab-case, ``qti-`` prefix) or 2.x (camelCase)."""

    ns: str
    v3: bool

    def name(self, kebab: str) -> str:
        """Local name of a QTI element: ``item-body`` -> ``qti-item-body`` or ``itemBody``."""
        return f"qti-{kebab}" if self.v3 else self.attr(kebab)

    def attr(self, kebab: str) -> str:
        if self.v3:
            return kebab
        first, *rest = kebab.split("-")
        return first + "".join(part.capitalize() for part in rest)

    def set_attributes(self, el: etree._Element, pairs: Sequence[tuple[str, str]]) -> None:
        """Set attributes named in kebab-case, each spelled as this dialect spells it."""
        for name, value in pairs:
            el.set(self.attr(name), value)

    def tag(self, kebab: str) -> str:
        return f"{{{self.ns}}}{self.name(kebab)}"

    def html(self, name: str) -> str:
        return f"{{{self.ns}}}{name}"

    @property
    def interaction_suffix(self) -> str:
        return "-interaction" if self.v3 else "Interaction"


_DIALECTS = {"3.0": _Dialect(QTI3_NS, True), "2.1": _Dialect(QTI21_NS, False)}
_READ_DIALECTS = {
    (QTI3_NS, "qti-assessment-item"): _DIALECTS["3.0"],
    (QTI21_NS, "assessmentItem"): _DIALECTS["2.1"],
    (QTI22_NS, "assessmentItem"): _Dialect(QTI22_NS, False),
}


# -- writing ------------------------------------------------------------------------------------


def _choice_id(index: int) -> str:
    letters = ""
    index += 1
    while index:
        index, rest = divmod(index - 1, 26)
        letters = chr(ord("A") + rest) + letters
    return letters


def _set_text(el: etree._Element, text: str, br: str) -> None:
    """Put ``text`` in ``el``, line breaks as ``<br/>`` elements."""
    first, *lines = text.split("\n")
    el.text = first
    for line in lines:
        etree.SubElement(el, br).tail = line


def _table_element(parent: etree._Element, table: Table, d: _Dialect) -> None:
    """A stem's table as QTI (XHTML) table markup: header cells ``<th scope="col">``, the
    alignment of each column as a class (``align-right``), as the pages render it."""
    element = etree.SubElement(parent, d.html("table"))

    def row(section: etree._Element, cells: Sequence[str], tag: str) -> None:
        tr = etree.SubElement(section, d.html("tr"))
        for text, align in zip(cells, table.align, strict=False):
            cell = etree.SubElement(tr, d.html(tag))
            if tag == "th":
                cell.set("scope", "col")
            if align:
                cell.set("class", f"align-{align}")
            cell.text = text

    row(etree.SubElement(element, d.html("thead")), table.header, "th")
    body = etree.SubElement(element, d.html("tbody"))
    for cells in table.rows:
        row(body, cells, "td")


def _read_table(el: etree._Element, d: _Dialect) -> Table:
    """A QTI (XHTML) table as a :class:`Table`: the header is the first row made of ``th``
    cells (in ``thead`` or not), the body every other row; cell text has its whitespace
    collapsed."""
    rows = list(el.iter(d.html("tr")))
    cells = [[c for c in tr if local_name(c) in ("th", "td")] for tr in rows]
    header: list[etree._Element] = []
    if cells and all(local_name(c) == "th" for c in cells[0]):
        header, cells = cells[0], cells[1:]
    width = max([len(header), *(len(r) for r in cells)], default=0)
    align = []
    for k in range(width):
        first = header[k] if k < len(header) else next((r[k] for r in cells if k < len(r)), None)
        classes = (first.get("class") or "").split() if first is not None else []
        style = (first.get("style") or "") if first is not None else ""
        found = [c.removeprefix("align-") for c in classes if c in ("align-left", "align-right",
                                                                     "align-center")]
        styled = re.search(r"text-align:\s*(left|right|center)", style)
        align.append(found[0] if found else styled.group(1) if styled else "")
    text = [[_text(c, d, False).replace("\n", " ") for c in r] for r in (header, *cells)]
    return Table(header=tuple(text[0]) or ("",) * width,
                 rows=tuple(tuple(r) for r in text[1:]), align=tuple(align))


def _media_element(parent: etree._Element, ref: str, d: _Dialect) -> None:
    mime = mimetypes.guess_type(ref, strict=False)[0] or "application/octet-stream"
    if mime.startswith("image/"):
        etree.SubElement(parent, d.html("img"), src=ref, alt="")
    else:
        etree.SubElement(parent, d.html("object"), data=ref, type=mime)


#: ``xml:lang``: the language of an item's text (QTI 2.1 and 3.0 allow it on the item element).
XML_LANG = "{http://www.w3.org/XML/1998/namespace}lang"


def item_element(record: ItemRecord, version: str) -> etree._Element:
    """A checked record as an item element of QTI ``version`` (``"3.0"`` or ``"2.1"``), its
    language as ``xml:lang`` (none when the record does not say)."""
    d = _DIALECTS[version]
    root = etree.Element(d.tag("assessment-item"), nsmap={None: d.ns, "xsi": XSI_NS})
    root.set(f"{{{XSI_NS}}}schemaLocation", f"{d.ns} {_SCHEMA[d.ns]}")
    if record.language:
        root.set(XML_LANG, record.language)
    d.set_attributes(
        root,
        (
            ("identifier", record.item_id),
            ("title", record.item_id),
            ("adaptive", "false"),
            ("time-dependent", "false"),
            ("tool-name", TOOL_NAME),
            ("tool-version", TOOL_VERSION),
        ),
    )
    declaration = etree.SubElement(root, d.tag("response-declaration"))
    d.set_attributes(
        declaration,
        (("identifier", "RESPONSE"), ("cardinality", "single"), ("base-type", "identifier")),
    )
    if record.key is not None:
        correct = etree.SubElement(declaration, d.tag("correct-response"))
        etree.SubElement(correct, d.tag("value")).text = _choice_id(record.key)
    outcome = etree.SubElement(root, d.tag("outcome-declaration"))
    d.set_attributes(
        outcome, (("identifier", "SCORE"), ("cardinality", "single"), ("base-type", "float"))
    )
    body = etree.SubElement(root, d.tag("item-body"))
    br = d.html("br")
    if record.rationale:
        rubric = etree.SubElement(body, d.tag("rubric-block"), view="scorer tutor")
        if d.v3:
            rubric.set("use", "ext:rationale")
            rubric = etree.SubElement(rubric, d.tag("content-body"))
        else:
            rubric.set("class", "cat-rationale")
        _set_text(etree.SubElement(rubric, d.html("p")), record.rationale, br)
    for part in stem_blocks(record.stem) if record.stem else ():
        if isinstance(part, Table):
            _table_element(body, part, d)
        else:
            _set_text(etree.SubElement(body, d.html("p")), part, br)
    if record.media:
        media = etree.SubElement(body, d.html("div"))
        media.set("class", "cat-media")
        for ref in record.media:
            _media_element(media, ref, d)
    interaction = etree.SubElement(body, d.tag("choice-interaction"))
    d.set_attributes(
        interaction,
        (("response-identifier", "RESPONSE"), ("shuffle", "false"), ("max-choices", "1")),
    )
    for index, option in enumerate(record.options):
        choice = etree.SubElement(interaction, d.tag("simple-choice"), identifier=_choice_id(index))
        _set_text(choice, option, br)
    processing = etree.SubElement(root, d.tag("response-processing"))
    processing.set("template", _MATCH_CORRECT[version])
    indent(root)
    return root


def write_qti_item(record: ItemRecord, version: str = "3.0") -> bytes:
    """One item as a QTI single-choice item document (content only, no parameters).

    Parameters
    ----------
    record : ItemRecord
        Needs at least two options.
    version : {"3.0", "2.1"}
        QTI 3.0 ``qti-assessment-item`` or QTI 2.1 ``assessmentItem``.

    Returns
    -------
    bytes
        UTF-8 XML with declaration.

    Raises
    ------
    InterchangeError
        When the record cannot be written (fewer than 2 options, key outside them, ...).
    ValueError
        For an unknown ``version``.
    """
    if version not in _DIALECTS:
        raise ValueError(f"QTI version must be '3.0' or '2.1', got {version!r}")
    check_records([record], qti=True)
    return to_bytes(item_element(record, version))


# -- reading ------------------------------------------------------------------------------------


def _segments(el: etree._Element, skip: set[str], br: str, out: list[str]) -> None:
    """Append the text of ``el`` to ``out`` (a list of lines), ``<br/>`` starting a new line."""
    out[-1] += el.text or ""
    for child in el:
        if child.tag == br:
            out.append("")
        elif isinstance(child.tag, str) and local_name(child) not in skip:
            _segments(child, skip, br, out)
        out[-1] += child.tail or ""


def _text(el: etree._Element, d: _Dialect, exact: bool, skip: set[str] = frozenset()) -> str:
    lines = [""]
    _segments(el, set(skip), d.html("br"), lines)
    if exact:
        return "\n".join(lines)
    return "\n".join(" ".join(line.split()) for line in lines).strip("\n")


def _is_rationale(el: etree._Element, d: _Dialect) -> bool:
    return local_name(el) == d.name("rubric-block") and (
        el.get("use") == "ext:rationale" or "cat-rationale" in (el.get("class") or "").split()
    )


def read_item(
    root: etree._Element, d: _Dialect, source: str, problems: Problems
) -> ItemRecord | None:
    """The record of an item element, or None after adding its problems to ``problems``."""
    before = len(problems)
    item_id = (root.get("identifier") or "").strip()

    def at(el: etree._Element, text: str, attr: str | None = None) -> None:
        problems.at(el, source, text, attr=attr, item_id=item_id or None)

    if not item_id:
        at(root, "the item has no identifier", "identifier")
    exact = root.get(d.attr("tool-name")) == TOOL_NAME
    body = root.find(d.tag("item-body"))
    if body is None:
        at(root, f"the item has no {d.name('item-body')}")
        return None
    choice_name = d.name("choice-interaction")
    interactions = [e for e in body.iter() if local_name(e).endswith(d.interaction_suffix)]
    others = [e for e in interactions if local_name(e) != choice_name]
    choices = [e for e in interactions if local_name(e) == choice_name]
    if others:
        at(
            others[0],
            f"unsupported interaction {local_name(others[0])}: only single-choice items "
            f"({choice_name} with {d.attr('max-choices')} 1) are supported",
        )
        return None
    if not choices:
        at(body, f"no {choice_name}: only single-choice items are supported")
        return None
    if len(choices) > 1:
        at(choices[1], "a second interaction: only items with one choice interaction are supported")
        return None
    interaction = choices[0]
    max_choices = (interaction.get(d.attr("max-choices")) or "1").strip()
    if max_choices != "1":
        at(
            interaction,
            f"is {max_choices!r}: only single-choice (1) is supported",
            d.attr("max-choices"),
        )
    skip = {
        d.name("feedback-inline"),
        d.name("feedback-block"),
        d.name("modal-feedback"),
        d.name("template-inline"),
        d.name("template-block"),
    }
    simple = [c for c in interaction if local_name(c) == d.name("simple-choice")]
    if not simple:
        at(interaction, f"has no {d.name('simple-choice')}")
    ids: list[str] = []
    for choice in simple:
        identifier = (choice.get("identifier") or "").strip()
        if not identifier:
            at(choice, "the choice has no identifier", "identifier")
        elif identifier in ids:
            at(choice, f"the choice identifier {identifier!r} appears twice", "identifier")
        ids.append(identifier)
    options = [_text(c, d, exact, skip) for c in simple]
    key = _read_key(root, interaction, ids, d, at)
    rationale, parts = "", []  # parts of the stem: (text, is_table)
    prompt = interaction.find(d.tag("prompt"))
    block_skip = skip | {choice_name, d.name("rubric-block")}
    table = d.html("table")

    def add_block(el: etree._Element) -> None:
        """A block of a stem: tables as Markdown tables, text as text that shows literally."""
        if el.tag == table:
            parts.append((markdown_table(_read_table(el, d)), True))
        elif any(True for _ in el.iter(table)):  # a container holding a table: its blocks
            if el.text and el.text.strip():
                parts.append((escape_text(" ".join(el.text.split())), False))
            for inner in el:
                if isinstance(inner.tag, str) and local_name(inner) not in block_skip:
                    add_block(inner)
                if inner.tail and inner.tail.strip():
                    parts.append((escape_text(" ".join(inner.tail.split())), False))
        else:
            parts.append((escape_text(_text(el, d, False, block_skip)), False))

    for child in body:
        if not isinstance(child.tag, str):
            continue
        if _is_rationale(child, d):
            holder = child.find(f"{d.tag('content-body')}/{d.html('p')}" if d.v3 else d.html("p"))
            rationale = (
                _text(holder, d, True) if exact and holder is not None else _text(child, d, False)
            )
        elif exact:  # written here: paragraphs exactly as written, tables in canonical form
            if child.tag == d.html("p"):
                parts.append((_text(child, d, True), False))
            elif child.tag == table:
                parts.append((markdown_table(_read_table(child, d)), True))
        elif child is interaction:
            if prompt is not None:
                parts.append((escape_text(_text(prompt, d, False, skip)), False))
        elif local_name(child) not in block_skip:
            add_block(child)
            if prompt is not None and interaction in child.iterdescendants():
                parts.append((escape_text(_text(prompt, d, False, skip)), False))
    stem, previous_table = "", False
    for k, (text, is_table) in enumerate(part for part in parts if exact or part[0]):
        if k:
            stem += "\n\n" if exact or is_table or previous_table else "\n"
        stem += text
        previous_table = is_table
    media = [
        ref
        for e in body.iter(
            d.html("img"), d.html("object"), d.html("audio"), d.html("video"), d.html("source")
        )
        if (ref := (e.get("data") if local_name(e) == "object" else e.get("src")) or "").strip()
    ]
    if len(problems) > before:
        return None
    record = ItemRecord(
        item_id=item_id, stem=stem, options=options, key=key, rationale=rationale, media=media,
        language=(root.get(XML_LANG) or "").strip(),
    )
    for name, text in record_problems(record, qti=True):  # e.g. a choice holding only an image
        m = re.fullmatch(r"option_(\d+)", name)
        index = int(m.group(1)) - 1 if m else -1
        where = simple[index] if 0 <= index < len(simple) else interaction
        at(where if name.startswith(("option", "key")) else root, f"{name} {text}")
    return None if len(problems) > before else record


def _read_key(root, interaction, ids: list[str], d: _Dialect, at) -> int | None:
    response = interaction.get(d.attr("response-identifier"))
    declarations = [
        e
        for e in root.iterchildren(d.tag("response-declaration"))
        if e.get("identifier") == response
    ]
    if not declarations:
        at(
            interaction,
            f"{response!r} names no {d.name('response-declaration')}",
            d.attr("response-identifier"),
        )
        return None
    declaration = declarations[0]
    if declaration.get("cardinality") != "single":
        at(
            declaration,
            f"is {declaration.get('cardinality')!r}: only single-choice items "
            "('single') are supported",
            "cardinality",
        )
    if declaration.get(d.attr("base-type")) != "identifier":
        at(
            declaration,
            f"is {declaration.get(d.attr('base-type'))!r}, expected 'identifier'",
            d.attr("base-type"),
        )
    correct = declaration.find(d.tag("correct-response"))
    values = [] if correct is None else list(correct.iterchildren(d.tag("value")))
    if len(values) > 1:
        at(correct, "more than one correct value: only single-choice items are supported")
        return None
    if not values:
        return None
    value = (values[0].text or "").strip()
    if value not in ids:
        at(
            values[0],
            f"the correct response {value!r} is not one of the choices ({', '.join(ids)})",
        )
        return None
    return ids.index(value)


def item_dialect(root: etree._Element) -> _Dialect | None:
    """The QTI dialect of an item element, or None when ``root`` is not a QTI item."""
    qname = etree.QName(root)
    return _READ_DIALECTS.get((qname.namespace, qname.localname))
