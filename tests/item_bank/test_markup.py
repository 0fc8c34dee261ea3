"""Item content: the safe Markdown subset rendered to HTML, and tables through QTI and back."""

from __future__ import annotations

import lxml.html
import pytest
from lxml import etree

from item_bank.demo_items import generate_demo_items
from item_bank.interchange import ItemRecord, read_qti, write_qti_item
from item_bank.markup import Table, escape_text, markdown_table, render_html, stem_blocks

QTI3 = "{http://www.imsglobal.org/xsd/imsqtiasi_v3p0}"
STEM = (
    "Bus tickets sold each day\n\n"
    "| Day | Number |\n| :-- | --: |\n| Monday | 12 |\n| Tuesday | 107 |\n\n"
    "How many bus tickets were sold altogether?"
)


def _html(text: str):
    return lxml.html.fromstring(f"<div>{render_html(text)}</div>")


def _table(root) -> tuple[list[str], list[list[str]]]:
    (table,) = root.findall(".//table")
    header = [th.text_content() for th in table.findall("./thead/tr/th")]
    rows = [[td.text_content() for td in tr.findall("./td")] for tr in table.findall("./tbody/tr")]
    return header, rows


def test_a_markdown_table_renders_as_a_table_with_column_headers() -> None:
    root = _html(STEM)
    assert _table(root) == (["Day", "Number"], [["Monday", "12"], ["Tuesday", "107"]])
    assert [th.get("scope") for th in root.iter("th")] == ["col", "col"]
    assert [td.get("class") for td in root.iter("td")] == ["align-left", "align-right"] * 2
    assert not any(el.get("style") for el in root.iter())  # the CSP forbids inline styles
    assert [p.text_content() for p in root.findall("./p")] == [
        "Bus tickets sold each day", "How many bus tickets were sold altogether?"]
    assert root.find("./div").get("class") == "table-wrap"


def test_plain_text_keeps_its_lines_and_the_subset_renders() -> None:
    assert render_html("Line one\nLine two") == "<p>Line one<br />\nLine two</p>\n"
    root = _html("Work out *exactly*:\n\n- **a**\n- `b`\n\n1. one\n2. two")
    assert [el.tag for el in root.iter("em", "strong", "code", "ul", "ol")] == [
        "em", "ul", "strong", "code", "ol"]
    assert render_html("") == "" and render_html(None) == ""


@pytest.mark.parametrize("text", [
    "<script>alert(1)</script>",
    "<img src=x onerror=alert(1)>",
    "[click](javascript:alert(1))",
    "[click](JaVaScRiPt:alert(1))",
    "[click]( data:text/html;base64,PHNjcmlwdD4=)",
    "<a href='javascript:alert(1)'>x</a>",
    "![x](javascript:alert(1))",
    "| a |\n| - |\n| <b onmouseover=x>b</b> |",
])
def test_nothing_active_gets_through(text: str) -> None:
    out = render_html(text)
    root = _html(text)
    assert not root.findall(".//script") and not root.findall(".//img")
    assert all(not (a.get("href") or "").strip().lower().startswith(("javascript", "data"))
               for a in root.iter("a"))
    assert not any(k.startswith("on") for el in root.iter() for k in el.attrib)
    assert "<script" not in out and "<b " not in out


def test_only_web_and_mail_links_are_links() -> None:
    root = _html("[a](https://example.org) [b](mailto:x@example.org) [c](ftp://x) [d](page)")
    assert [a.get("href") for a in root.iter("a")] == [
        "https://example.org", "mailto:x@example.org", "page"]
    assert {a.get("rel") for a in root.iter("a")} == {"noopener noreferrer"}


def test_headings_and_rules_are_text_under_the_pages_own_heading() -> None:
    root = _html("# Not a heading\n\ntext\n---\n\n> quote")
    assert not root.findall(".//h1") and not root.findall(".//h2") and not root.findall(".//hr")
    assert not root.findall(".//blockquote")


def test_canonical_tables_split_and_join_exactly() -> None:
    parts = stem_blocks(STEM)
    assert parts[0] == "Bus tickets sold each day" and parts[2].startswith("How many")
    assert parts[1] == Table(header=("Day", "Number"), align=("left", "right"),
                             rows=(("Monday", "12"), ("Tuesday", "107")))
    assert "\n\n".join(p if isinstance(p, str) else markdown_table(p) for p in parts) == STEM
    assert stem_blocks("no table\n\nhere ") == ["no table\n\nhere "]
    piped = Table(header=("a|b", "c"), rows=(("x\\y", "multi\nline"),), align=("", "center"))
    assert markdown_table(piped) == "| a\\|b | c |\n| --- | :-: |\n| x\\\\y | multi line |"
    assert _table(_html(markdown_table(piped))) == (["a|b", "c"], [["x\\y", "multi line"]])


def test_escape_text_shows_text_literally() -> None:
    for text in ("What is 3/4?", "x < y & z", "a *b* c", "- not a list", "1. not a list",
                 "| not | a table |"):
        root = _html(escape_text(text))
        assert root.text_content().strip() == text
        assert not root.findall(".//ul") and not root.findall(".//em")
    assert escape_text("What is 3/4?") == "What is 3/4?"  # unchanged when nothing needs it


@pytest.mark.parametrize("version", ["3.0", "2.1"])
def test_demo_table_items_travel_through_qti_as_tables(version: str) -> None:
    items = [i for i in generate_demo_items(60) if i.skill == "tables"]
    assert len(items) == 10
    for item in items:
        record = ItemRecord(item_id=item.item_id, stem=item.stem, options=list(item.options),
                            key=item.key, rationale=item.rationale)
        xml = write_qti_item(record, version)
        root = etree.fromstring(xml)
        ns = QTI3 if version == "3.0" else "{http://www.imsglobal.org/xsd/imsqti_v2p1}"
        (table,) = root.iter(f"{ns}table")
        header = table.findall(f"{ns}thead/{ns}tr/{ns}th")
        assert [th.text for th in header] == ["Day", "Number"]
        assert {th.get("scope") for th in header} == {"col"}
        assert len(table.findall(f"{ns}tbody/{ns}tr")) >= 3
        body = root.find(f"{ns}itemBody" if version == "2.1" else f"{ns}qti-item-body")
        assert [etree.QName(e).localname for e in body][1:4] == ["p", "table", "p"]
        (back,) = read_qti(xml)
        assert back.stem == item.stem  # exactly: the Markdown table in its canonical form


def test_a_table_from_another_tool_becomes_a_markdown_table() -> None:
    xml = f"""<?xml version="1.0" encoding="UTF-8"?>
<qti-assessment-item xmlns="{QTI3[1:-1]}" identifier="T-1" title="t" adaptive="false"
    time-dependent="false">
  <qti-response-declaration identifier="RESPONSE" cardinality="single" base-type="identifier">
    <qti-correct-response><qti-value>B</qti-value></qti-correct-response>
  </qti-response-declaration>
  <qti-item-body>
    <div>
      <p>Marks   in the *test*</p>
      <table>
        <tbody>
          <tr><th>Name</th><th class="align-right">Mark</th></tr>
          <tr><td>Ana  Ruiz</td><td class="align-right">7</td></tr>
          <tr><td>Ben | Co</td><td class="align-right">9</td></tr>
        </tbody>
      </table>
    </div>
    <qti-choice-interaction response-identifier="RESPONSE" max-choices="1">
      <qti-prompt>Who scored more?</qti-prompt>
      <qti-simple-choice identifier="A">Ana</qti-simple-choice>
      <qti-simple-choice identifier="B">Ben</qti-simple-choice>
    </qti-choice-interaction>
  </qti-item-body>
</qti-assessment-item>""".encode()
    (record,) = read_qti(xml)
    assert record.stem == (
        "Marks in the \\*test\\*\n\n"
        "| Name | Mark |\n| --- | --: |\n| Ana Ruiz | 7 |\n| Ben \\| Co | 9 |\n\n"
        "Who scored more?")
    root = _html(record.stem)
    assert _table(root) == (["Name", "Mark"], [["Ana Ruiz", "7"], ["Ben | Co", "9"]])
    assert root.find("./p").text_content() == "Marks in the *test*"
