"""Item content as a safe Markdown subset: stems rendered to HTML, tables to and from QTI.

Stems (and options) are stored as text. A stem may use a small Markdown subset, rendered by
markdown-it-py (MIT): paragraphs, line breaks (a single newline is a line break, so plain-text
stems keep their lines), *emphasis* and **strong**, lists, `code` and fenced code blocks, links
(``http``, ``https`` and ``mailto`` only), and GFM tables::

    Cups of lemonade sold each day

    | Day | Number |
    | :-- | --: |
    | Monday | 12 |
    | Tuesday | 7 |

    How many cups were sold altogether?

A table becomes a ``<table>`` whose header cells are ``<th scope="col">``, inside a
``<div class="table-wrap">`` that scrolls sideways on a narrow screen; column alignment becomes a
class (``align-right``), never a ``style`` attribute, which the pages' Content-Security-Policy
would block. Raw HTML is never passed through (it shows as text), nor are images, headings,
horizontal rules, block quotes or indented code blocks: a stem sits under the page's own heading,
and media travel as the item's media references.

QTI (see :mod:`item_bank.interchange`): :func:`stem_blocks` splits a stem into its tables and the
text around them, so an export can write each table as QTI table markup and the text exactly as
written; :func:`markdown_table` writes a table read from QTI back as Markdown, in the canonical
form used here (one space inside each pipe, alignment row ``:--``, ``--:``, ``:-:`` or ``---``).
"""

from __future__ import annotations

import html
import re
from collections.abc import Sequence
from dataclasses import dataclass

from markdown_it import MarkdownIt
from markdown_it.renderer import RendererHTML
from markdown_it.token import Token

ALIGNMENTS = ("", "left", "right", "center")
_ALIGN_ROW = {"": "---", "left": ":--", "right": "--:", "center": ":-:"}
_SAFE_SCHEMES = ("http:", "https:", "mailto:")
_STYLE_ALIGN = re.compile(r"text-align:\s*(left|right|center)")


@dataclass(frozen=True)
class Table:
    """A table of text cells: a header row, body rows and each column's alignment."""

    header: tuple[str, ...]
    rows: tuple[tuple[str, ...], ...]
    align: tuple[str, ...]  # per column: "", "left", "right" or "center"


def _validate_link(url: str) -> bool:
    """Links to the web or e-mail, or relative ones; never ``javascript:``, ``data:``..."""
    scheme = re.match(r"\s*([a-zA-Z][a-zA-Z0-9+.-]*:)", url)
    return scheme is None or scheme.group(1).lower() in _SAFE_SCHEMES


def _aligned(tokens: list[Token], idx: int) -> str | None:
    style = tokens[idx].attrGet("style")
    match = _STYLE_ALIGN.search(str(style)) if style else None
    return match.group(1) if match else None


def _cell_open(self: RendererHTML, tokens: list[Token], idx: int, options, env) -> str:
    token = tokens[idx]
    align = _aligned(tokens, idx)
    attrs = ' scope="col"' if token.tag == "th" else ""
    if align:
        attrs += f' class="align-{align}"'
    return f"<{token.tag}{attrs}>"


def _table_open(self: RendererHTML, tokens: list[Token], idx: int, options, env) -> str:
    return '<div class="table-wrap">\n<table>\n'


def _table_close(self: RendererHTML, tokens: list[Token], idx: int, options, env) -> str:
    return "</table>\n</div>\n"


def _link_open(self: RendererHTML, tokens: list[Token], idx: int, options, env) -> str:
    tokens[idx].attrSet("rel", "noopener noreferrer")
    return self.renderToken(tokens, idx, options, env)


def _markdown() -> MarkdownIt:
    md = MarkdownIt("commonmark", {"html": False, "breaks": True, "linkify": False})
    md.enable("table")
    md.disable(["image", "html_block", "html_inline", "heading", "lheading", "hr",
                "blockquote", "code", "reference", "autolink"])
    md.validateLink = _validate_link
    for rule in ("th_open", "td_open"):
        md.add_render_rule(rule, _cell_open)
    md.add_render_rule("table_open", _table_open)
    md.add_render_rule("table_close", _table_close)
    md.add_render_rule("link_open", _link_open)
    return md


_MD = _markdown()


def render_html(text: str | None) -> str:
    """Render a stem (or any item text) to safe HTML.

    Parameters
    ----------
    text
        Markdown in the subset described in the module notes; ``None`` or ``""`` give ``""``.

    Returns
    -------
    str
        HTML with every piece of the source text escaped: raw HTML in ``text`` shows as text, and
        only links to ``http``, ``https`` and ``mailto`` (or relative ones) become links.
    """
    if not text:
        return ""
    return _MD.render(text)


def markdown_table(table: Table) -> str:
    """``table`` as a Markdown table in the canonical form (see the module notes).

    Pipes in cells are escaped, line breaks become spaces, so every cell stays one cell.
    """
    width = len(table.header)

    def row(cells: Sequence[str]) -> str:
        cells = [*cells, *[""] * (width - len(cells))][:width]
        text = [" ".join(c.split()).replace("\\", "\\\\").replace("|", "\\|") for c in cells]
        return "| " + " | ".join(text) + " |"

    align = [*table.align, *[""] * (width - len(table.align))][:width]
    lines = [row(table.header), "| " + " | ".join(_ALIGN_ROW[a] for a in align) + " |"]
    lines += [row(cells) for cells in table.rows]
    return "\n".join(lines)


def stem_blocks(text: str) -> list[str | Table]:
    """Split ``text`` into its tables and the text between them, in order.

    Text parts are the source lines as written (blank lines at their edges dropped), so joining
    the parts with a blank line (tables written by :func:`markdown_table`) gives ``text`` back
    whenever its tables are in the canonical form and stand between single blank lines. A text
    without tables is one part, ``text`` itself.
    """
    tokens = _MD.parse(text)
    tables = [(i, t) for i, t in enumerate(tokens) if t.type == "table_open" and t.level == 0]
    if not tables:
        return [text]
    lines = text.split("\n")
    parts: list[str | Table] = []
    at = 0
    for index, token in tables:
        start, end = token.map or (at, at)
        before = "\n".join(lines[at:start]).strip("\n")
        if before:
            parts.append(before)
        parts.append(_table_of(tokens, index))
        at = end
    after = "\n".join(lines[at:]).strip("\n")
    if after:
        parts.append(after)
    return parts


def _table_of(tokens: list[Token], start: int) -> Table:
    """The :class:`Table` whose ``table_open`` token is ``tokens[start]``."""
    header: list[str] = []
    rows: list[list[str]] = []
    align: list[str] = []
    in_head = False
    for i in range(start + 1, len(tokens)):
        token = tokens[i]
        if token.type == "table_close":
            break
        if token.type == "thead_open":
            in_head = True
        elif token.type == "thead_close":
            in_head = False
        elif token.type == "tr_open" and not in_head:
            rows.append([])
        elif token.type == "th_open":
            align.append(_aligned(tokens, i) or "")
        elif token.type == "inline":
            cell = _plain(token)
            (header if in_head else rows[-1]).append(cell)
    return Table(header=tuple(header), rows=tuple(tuple(r) for r in rows), align=tuple(align))


def _plain(inline: Token) -> str:
    """The text a reader sees in an inline token (markup dropped)."""
    return "".join(child.content for child in inline.children or ()
                   if child.type in ("text", "code_inline"))


def _plain_paragraphs(text: str) -> str:
    """How :func:`render_html` shows ``text`` when no character in it is Markdown syntax."""
    paragraphs = [p for p in re.split(r"\n[ \t]*\n", text) if p.strip()]
    return "".join("<p>" + "<br />\n".join(html.escape(line.strip(), quote=False)
                                          for line in p.strip().split("\n")) + "</p>\n"
                   for p in paragraphs)


def escape_text(text: str) -> str:
    """``text`` as Markdown that shows it literally (for text read from elsewhere, e.g. QTI).

    Text that Markdown would show as it is stays unchanged; otherwise every ASCII punctuation
    character gets a backslash, which CommonMark reads as that character itself.
    """
    if render_html(text) == _plain_paragraphs(text):
        return text
    return re.sub(r"([!-/:-@\[-`{-~])", r"\\\1", text)
