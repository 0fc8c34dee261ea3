"""Tests of item import and export (CSV and QTI): lossless round trips, errors that say where,
QTI 2.1 and foreign QTI 3.0 import, and refusal of hostile XML and zip files."""

from __future__ import annotations

import io
import math
import string
import struct
import zipfile

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from lxml import etree

from cat_engine.bank import ItemBank
from item_bank import interchange
from item_bank.interchange import (
    QTI3_NS,
    USAGE3_NS,
    InterchangeError,
    ItemRecord,
    ParameterRecord,
    qti_package,
    read_items_csv,
    read_qti,
    write_items_csv,
    write_parameters_csv,
    write_qti_item,
    write_qti_package,
)

QTI = f"{{{QTI3_NS}}}"

# -- records ------------------------------------------------------------------------------------

EVERY_MODEL = [
    ParameterRecord("rasch", b=-0.25),
    ParameterRecord("rasch", a=1.0, b=0.1),
    ParameterRecord("1pl", a=1.7, b=0.3),
    ParameterRecord("2pl", a=1.25, b=-1.0 / 3.0),
    ParameterRecord("2pl", a=0.8, b=0.5, c=0.0, d=1.0),
    ParameterRecord("3pl", a=1.1, b=0.2, c=0.2),
    ParameterRecord("4pl", a=1.3, b=-0.4, c=0.15, d=0.95),
    ParameterRecord("4pl", a=0.9, b=1e-17, d=0.9),
    ParameterRecord("grm", a=1.4, thresholds=[-1.5, -0.1, 0.7, 2.0]),
    ParameterRecord("gpcm", a=0.7, thresholds=[0.4, -0.3]),
    ParameterRecord("gpcm", thresholds=[0.0]),
    ParameterRecord("pcm", thresholds=[-0.5, 1.2, 0.3]),
]


def sample_records() -> list[ItemRecord]:
    """Items of every model, plus unicode, markup-like text, line breaks and no parameters."""
    records = [
        ItemRecord(
            item_id=f"ALG-{n:03d}",
            stem=f"Solve 2x + {n} = 7 for x, if x < 5 & y > 1",
            options=["1", "2", "3", "<b>none</b>"],
            key=n % 4,
            rationale="Subtract, then divide.",
            skill="algebra.linear",
            content_tags=["linear", "grade-8"],
            status=("draft", "pretest", "operational", "retired")[n % 4],
            media=["media/graph.png"] if n % 2 else [],
            parameters=p,
        )
        for n, p in enumerate(EVERY_MODEL, 1)
    ]
    records += [
        ItemRecord(
            item_id="GEO-ü1",
            stem="Ünïcödé: ∠ABC = 90°?\nSecond line, \"quoted\", 'single', tab\there",
            options=["ja", "nein", "vielleicht; 'so'", "\u03b1 \u2264 \u03b2"],
            key=0,
            rationale="Line one\r\nLine two",
            media=["https://cdn.example.org/fig 1.svg", "audio/prompt.mp3"],
        ),
        ItemRecord(item_id="NOKEY-1", stem="Survey: pick one", options=["yes", "no"]),
        ItemRecord(
            item_id="MARKUP-1", stem="]]> &amp; <p>not a tag</p>", options=["&", "<"], key=1
        ),
    ]
    return records


# -- hypothesis strategies ----------------------------------------------------------------------

# ASCII, markup and CSV specials, line ends, and non-ASCII of several kinds (accents, CJK, astral,
# right-to-left, combining, no-break and zero-width spaces)
_ALPHABET = (
    string.ascii_letters + string.digits + " \n\r\t<>&\"';,]=-éüß∠°αβ✓中文😀שׁ\u0301\u00a0\u200b"
)
TEXT = st.text(st.sampled_from(_ALPHABET), max_size=20)
NONBLANK = TEXT.filter(str.strip)
TOKEN = (
    st.text(st.sampled_from(string.ascii_letters + string.digits + "-_.é "), max_size=10)
    .map(str.strip)
    .filter(bool)
)
FINITE = st.floats(-4, 4, allow_nan=False)
POSITIVE = st.floats(0.05, 4)


def _parameters() -> st.SearchStrategy[ParameterRecord]:
    def build(model, **fields):
        return st.builds(ParameterRecord, st.just(model), **fields)

    thresholds = st.lists(FINITE, min_size=1, max_size=5)
    return st.one_of(
        build("rasch", a=st.none() | st.just(1.0), b=FINITE),
        build("1pl", a=st.none() | POSITIVE, b=FINITE),
        build("2pl", a=POSITIVE, b=FINITE, c=st.none() | st.just(0.0), d=st.none() | st.just(1.0)),
        build("3pl", a=POSITIVE, b=FINITE, c=st.floats(0, 0.5), d=st.none() | st.just(1.0)),
        build("4pl", a=POSITIVE, b=FINITE, c=st.none() | st.floats(0, 0.4), d=st.floats(0.6, 1)),
        build(
            "grm",
            a=st.none() | POSITIVE,
            thresholds=st.lists(FINITE, min_size=1, max_size=5, unique=True).map(sorted),
        ),
        build("gpcm", a=st.none() | POSITIVE, thresholds=thresholds),
        build("pcm", a=st.none() | st.just(1.0), thresholds=thresholds),
    )


@st.composite
def item_records(draw, min_options: int = 0) -> ItemRecord:
    options = draw(st.lists(NONBLANK, min_size=min_options, max_size=6))
    return ItemRecord(
        item_id=draw(st.from_regex(r"[A-Z]{2,4}-[0-9]{1,4}[a-z]?", fullmatch=True)),
        stem=draw(TEXT) if len(options) >= 2 else "",
        options=options,
        key=draw(st.none() | st.integers(0, len(options) - 1)) if options else None,
        rationale=draw(TEXT),
        skill=draw(st.just("") | TOKEN),
        content_tags=draw(st.lists(TOKEN, max_size=3)),
        status=draw(st.sampled_from(interchange.STATUSES)),
        media=draw(
            st.lists(st.sampled_from(["img/a.png", "https://x.org/v.mp4", "s.mp3"]), max_size=3)
        ),
        parameters=draw(st.none() | _parameters()),
    )


def _record_lists(min_options: int = 0):
    return st.lists(item_records(min_options), max_size=4, unique_by=lambda r: r.item_id)


FAST = settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def _error(call, *args) -> InterchangeError:
    with pytest.raises(InterchangeError) as info:
        call(*args)
    return info.value


# -- CSV round trips ----------------------------------------------------------------------------


def test_csv_round_trip_every_model_and_tricky_text() -> None:
    records = sample_records()
    text = write_items_csv(records)
    assert read_items_csv(text) == records
    header = text.splitlines()[0]
    assert header.startswith("item_id,stem,option_1,option_2,option_3,option_4,key,")
    assert header.endswith("model,a,b,c,d,b1,b2,b3,b4")


def test_csv_numbers_round_trip_exactly() -> None:
    value = 0.1 + 0.2  # 0.30000000000000004
    record = ItemRecord("X-1", parameters=ParameterRecord("2pl", a=value, b=-1e-300))
    back = read_items_csv(write_items_csv([record]))[0].parameters
    assert back.a == value and back.b == -1e-300


@FAST
@given(_record_lists())
def test_csv_round_trip_property(records: list[ItemRecord]) -> None:
    assert read_items_csv(write_items_csv(records)) == records


def test_parameters_csv_round_trip() -> None:
    records = sample_records()
    back = read_items_csv(write_parameters_csv(records))
    expected = [
        ItemRecord(
            r.item_id,
            skill=r.skill,
            content_tags=r.content_tags,
            status=r.status,
            parameters=r.parameters,
        )
        for r in records
    ]
    assert back == expected


def test_accepted_parameters_are_accepted_by_the_engine() -> None:
    items = [p.to_item_parameters(f"I{n}") for n, p in enumerate(EVERY_MODEL)]
    bank = ItemBank.from_items(items)
    assert len(bank) == len(EVERY_MODEL)
    assert bank.a[0] == 1.0 and bank.c[5] == 0.2 and math.isnan(bank.b[8])


@FAST
@given(_parameters())
def test_generated_parameters_are_valid_for_the_engine(p: ParameterRecord) -> None:
    assert interchange.parameter_problems(p) == []
    ItemBank.from_items([p.to_item_parameters("X")])


# -- CSV input forms ----------------------------------------------------------------------------


def test_csv_bom_crlf_quotes_letters_and_physical_line_numbers() -> None:
    text = (
        "\ufeffItem_ID,Stem,Option_A,Option_B,Option_C,Key,Tags,Model,A,B\r\n"
        'M-1,"What is 1,5 + 1?\r\nThink twice.",2,"2,5","3,5",b, calc ; fractions ,2PL,1.0,0\r\n'
        "\r\n"
        "M-2,Pick,x,y,,A,,,,\r\n"
        ",,,,,,,,,\r\n"
        "M-3,Pick,x,y,,Z,,,,\r\n"
    )
    error = _error(read_items_csv, text)
    assert (error.line, error.field) == (7, "key")  # the quoted line break counts
    assert "line 7, column 'key'" in str(error)
    records = read_items_csv(text.replace("Z,,,,", "A,,,,"))
    assert [r.item_id for r in records] == ["M-1", "M-2", "M-3"]
    first = records[0]
    assert first.stem == "What is 1,5 + 1?\r\nThink twice."
    assert first.options == ["2", "2,5", "3,5"] and first.key == 1
    assert first.content_tags == ["calc", "fractions"]
    assert first.parameters == ParameterRecord("2pl", a=1.0, b=0.0)
    assert records[1].status == "draft" and records[1].parameters is None


def test_csv_parameters_only_file() -> None:
    text = "item_id,model,a,b,c,d,b1,b2,skill,status\nP-1,3pl,1.2,0.1,0.25,,,,alg,operational\n"
    text += "P-2,grm,0.9,,,,-1,1,,\nP-3,,,,,,,,,retired\n"
    records = read_items_csv(text)
    assert records[0] == ItemRecord(
        "P-1", skill="alg", status="operational", parameters=ParameterRecord("3pl", 1.2, 0.1, 0.25)
    )
    assert records[1].parameters == ParameterRecord("grm", a=0.9, thresholds=[-1.0, 1.0])
    assert records[2].parameters is None and records[2].status == "retired"


# -- CSV errors ---------------------------------------------------------------------------------

HEADER = "item_id,stem,option_1,option_2,option_3,key,status,model,a,b,c,d,b1,b2\n"
GOOD_ROW = "OK-1,Stem,a,b,c,1,draft,2pl,1,0,,,,\n"


@pytest.mark.parametrize(
    ("row", "column", "words"),
    [
        ("X-1,Stem,a,b,c,1,draft,2pl,abc,0,,,,", "a", "'abc' is not a number"),
        ("X-1,Stem,a,b,c,1,draft,2pl,1,nan,,,,", "b", "not a finite number"),
        ("X-1,Stem,a,b,c,1,draft,5pl,1,0,,,,", "model", "'5pl' is not one of"),
        ("X-1,Stem,a,b,c,1,draft,2pl,,0,,,,", "a", "required for a 2pl item"),
        ("X-1,Stem,a,b,c,1,draft,2pl,-1,0,,,,", "a", "must be > 0"),
        ("X-1,Stem,a,b,c,1,draft,3pl,1,0,,,,", "c", "required for a 3pl item"),
        ("X-1,Stem,a,b,c,1,draft,3pl,1,0,1.2,,,", "c", "[0, 1)"),
        ("X-1,Stem,a,b,c,1,draft,4pl,1,0,0.3,0.2,,", "d", "c < d <= 1"),
        ("X-1,Stem,a,b,c,1,draft,4pl,1,0,0.1,,,", "d", "required for a 4pl item"),
        ("X-1,Stem,a,b,c,1,draft,rasch,,,,,,", "b", "required for a rasch item"),
        ("X-1,Stem,a,b,c,1,draft,rasch,1.5,0,,,,", "a", "must be 1 for a rasch item"),
        ("X-1,Stem,a,b,c,1,draft,2pl,1,0,0.2,,,", "c", "must be 0 for a 2pl item"),
        ("X-1,Stem,a,b,c,1,draft,grm,1,,,,1,0.5", "b2", "thresholds must increase"),
        ("X-1,Stem,a,b,c,1,draft,gpcm,1,,,,,", "b1", "needs thresholds"),
        ("X-1,Stem,a,b,c,1,draft,gpcm,1,0.3,,,1,", "b", "not a parameter of a gpcm item"),
        ("X-1,Stem,a,b,c,1,draft,grm,1,,,,,2", "b1", "later threshold"),
        ("X-1,Stem,a,b,c,1,draft,,1,0,,,,", "model", "parameters are given (a, b)"),
        ("X-1,Stem,a,b,c,4,draft,,,,,,,", "key", "outside the options"),
        ("X-1,Stem,a,b,,3,draft,,,,,,,", "key", "outside the options"),
        ("X-1,Stem,a,b,c,first,draft,,,,,,,", "key", "not an option number"),
        ("X-1,Stem,a,,,,draft,,,,,,,", "option_1", "needs at least 2 options"),
        ("X-1,Stem,a,,c,,draft,,,,,,,", "option_2", "later option"),
        ("X-1,Stem,a,b,c,,final,,,,,,,", "status", "'final' is not one of"),
        ("  ,Stem,a,b,c,,draft,,,,,,,", "item_id", "is empty"),
        ("X-1,Stem\x01,a,b,c,,draft,,,,,,,", "stem", "character U+0001, which XML cannot hold"),
    ],
)
def test_csv_errors_name_line_and_column(row: str, column: str, words: str) -> None:
    error = _error(read_items_csv, HEADER + GOOD_ROW + row + "\n")
    assert error.line == 3 and error.field == column
    assert str(error).startswith(f"line 3, column {column!r}: ")
    assert words in str(error)


def test_csv_duplicate_item_id_names_both_lines() -> None:
    error = _error(read_items_csv, HEADER + GOOD_ROW + "X-1,S,a,b,,,,,,,,,,\n" + GOOD_ROW)
    assert error.line == 4 and error.item_id == "OK-1"
    assert "'OK-1' appears again (first on line 2)" in str(error)


@pytest.mark.parametrize(
    ("header", "words", "column"),
    [
        (
            "item_id,stem,option_1,option_2,colour,size\n",
            "unknown column 'colour'",
            "colour",
        ),
        ("stem,option_1,option_2\n", "'item_id' is missing", "item_id"),
        ("item_id,stem,option_1,option_3\n", "'option_2' is missing", "option_2"),
        ("item_id,stem,option_1,option_b\n", "mix numbers and letters", "option_b"),
        ("item_id,model,b1,b3\n", "'b2' is missing", "b2"),
        ("item_id,model,a,key,option_1\n", "need a 'stem' column", "key"),
        ("item_id,stem,a,A\n", "appears more than once", "a"),
    ],
)
def test_csv_header_errors(header: str, words: str, column: str) -> None:
    error = _error(read_items_csv, header + "X-1,,,,,\n")
    assert error.line == 1 and error.field == column and words in str(error)


def test_csv_collects_all_problems_and_returns_nothing() -> None:
    rows = "".join(f"B-{n},Stem,a,b,c,9,draft,2pl,x,0,,,,\n" for n in range(3))
    error = _error(read_items_csv, HEADER + GOOD_ROW + rows)
    assert [p.split(":")[0] for p in error.problems] == [
        "line 3, column 'key'",
        "line 3, column 'a'",
        "line 4, column 'key'",
        "line 4, column 'a'",
        "line 5, column 'key'",
        "line 5, column 'a'",
    ]
    assert "(and 3 more problems)" in str(error)


def test_csv_problems_are_capped() -> None:
    rows = "".join(f"B-{n},Stem,a,b,c,1,draft,2pl,x,0,,,,\n" for n in range(80))
    error = _error(read_items_csv, HEADER + rows)
    assert len(error.problems) == interchange.MAX_PROBLEMS
    assert "(and 77 more problems)" in str(error)


def test_csv_malformed_rows() -> None:
    assert _error(read_items_csv, "").line == 1
    error = _error(read_items_csv, HEADER + GOOD_ROW + "X-2,S,a,b,c,1,draft,,,,,,,,extra\n")
    assert error.line == 3 and "15 fields but the header has 14" in str(error)
    error = _error(read_items_csv, 'item_id,stem\nX-1,"a"b\n')
    assert error.line == 2 and "malformed CSV" in str(error)


def test_writers_refuse_records_that_would_not_round_trip() -> None:
    bad = [
        ItemRecord("W-1", stem="S", options=["a", "b"], key=2),
        ItemRecord("W-2", content_tags=["a;b"]),
        ItemRecord("W-2", parameters=ParameterRecord("3pl", a=1.0, b=0.0)),
    ]
    error = _error(write_items_csv, bad)
    assert error.item_id == "W-1" and error.field == "key"
    text = " | ".join(error.problems)
    assert "item 'W-2', tags" in text and "item 'W-2', c: is required" in text
    assert "'W-2' appears more than once" in text
    with pytest.raises(InterchangeError, match="needs at least 2 options"):
        write_qti_item(ItemRecord("W-3", options=["only"]))


# -- QTI writing --------------------------------------------------------------------------------


def test_qti3_item_structure_and_escaping() -> None:
    record = sample_records()[-1]
    root = etree.fromstring(write_qti_item(record))
    assert root.tag == f"{QTI}qti-assessment-item" and root.get("identifier") == "MARKUP-1"
    declaration = root.find(f"{QTI}qti-response-declaration")
    assert (
        declaration.get("identifier"),
        declaration.get("cardinality"),
        declaration.get("base-type"),
    ) == ("RESPONSE", "single", "identifier")
    assert declaration.findtext(f"{QTI}qti-correct-response/{QTI}qti-value") == "B"
    assert root.find(f"{QTI}qti-outcome-declaration").get("identifier") == "SCORE"
    body = root.find(f"{QTI}qti-item-body")
    assert body.findtext(f"{QTI}p") == "]]> &amp; <p>not a tag</p>"
    interaction = body.find(f"{QTI}qti-choice-interaction")
    assert interaction.get("max-choices") == "1"
    choices = interaction.findall(f"{QTI}qti-simple-choice")
    assert [(c.get("identifier"), c.text) for c in choices] == [("A", "&"), ("B", "<")]
    template = root.find(f"{QTI}qti-response-processing").get("template")
    assert template.endswith("/rptemplates/match_correct.xml")


def test_qti_rationale_and_media_placement() -> None:
    record = sample_records()[-3]
    root = etree.fromstring(write_qti_item(record))
    rubric = root.find(f"{QTI}qti-item-body/{QTI}qti-rubric-block")
    assert rubric.get("use") == "ext:rationale" and "scorer" in rubric.get("view").split()
    refs = [e.get("src") or e.get("data") for e in root.iter(f"{QTI}img", f"{QTI}object")]
    assert refs == record.media
    root21 = etree.fromstring(write_qti_item(record, version="2.1"))
    assert root21.tag == f"{{{interchange.QTI21_NS}}}assessmentItem"
    assert read_qti(write_qti_item(record, version="2.1")) == read_qti(write_qti_item(record))


def test_qti_single_item_round_trip_keeps_content() -> None:
    for record in sample_records():
        (back,) = read_qti(write_qti_item(record))
        assert (back.item_id, back.stem, back.options, back.key, back.rationale, back.media) == (
            record.item_id,
            record.stem,
            record.options,
            record.key,
            record.rationale,
            record.media,
        )


def test_qti_package_round_trip_every_model() -> None:
    records = sample_records()
    package = write_qti_package(records)
    assert read_qti(package, "bank.zip") == records
    assert write_qti_package(records) == package  # deterministic bytes
    with zipfile.ZipFile(io.BytesIO(package)) as archive:
        names = archive.namelist()
        usage = etree.fromstring(archive.read("usage-data.xml"))
        manifest = archive.read("imsmanifest.xml").decode()
    assert names[0] == "imsmanifest.xml" and "items/ALG-001.xml" in names
    assert usage.tag == f"{{{USAGE3_NS}}}usageData"
    stat = usage.find(f"{{{USAGE3_NS}}}ordinaryStatistic")
    assert stat.get("name") == "irt_model" and stat.get("glossary") == interchange.USAGE_GLOSSARY
    assert stat.find(f"{{{USAGE3_NS}}}targetObject").get("identifier") == "ALG-001"
    assert 'type="imsqti_item_xmlv3p0"' in manifest and 'type="qtiusagedata/xml"' in manifest


@FAST
@given(_record_lists(min_options=2))
def test_qti_package_round_trip_property(records: list[ItemRecord]) -> None:
    assert read_qti(write_qti_package(records)) == records


def test_qti_package_file_names_are_safe_and_distinct() -> None:
    records = [ItemRecord(i, stem="S", options=["a", "b"]) for i in ("a/b", "A_B", "..x", "é")]
    package = write_qti_package(records)
    with zipfile.ZipFile(io.BytesIO(package)) as archive:
        assert sorted(archive.namelist())[1:] == [
            "items/A_B-2.xml",
            "items/_.xml",
            "items/a_b.xml",
            "items/x.xml",
        ]
    assert read_qti(package) == records


def test_qti_package_with_media_files() -> None:
    record = ItemRecord("MED-1", stem="Look", options=["a", "b"], media=["media/graph.png"])
    package = write_qti_package([record], media={"media/graph.png": b"\x89PNG"})
    with zipfile.ZipFile(io.BytesIO(package)) as archive:
        assert archive.read("media/graph.png") == b"\x89PNG"
        assert b'<file href="media/graph.png"/>' in archive.read("imsmanifest.xml")
    assert read_qti(package) == [record]
    with pytest.raises(InterchangeError, match="not referenced by any item"):
        write_qti_package([record], media={"media/other.png": b""})
    with pytest.raises(InterchangeError, match="is not allowed"):
        write_qti_package([record], media={"../evil.png": b""})


def test_zip_of_items_without_manifest() -> None:
    records = sample_records()[:3]
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for record in records:
            archive.writestr(f"export/{record.item_id}.xml", write_qti_item(record))
        archive.writestr("export/readme.txt", "not xml")
    back = read_qti(buffer.getvalue())
    assert [r.item_id for r in back] == [r.item_id for r in records]
    assert all(r.parameters is None and r.status == "draft" for r in back)


# -- QTI import of items written by others -------------------------------------------------------

QTI21_ITEM = b"""<?xml version="1.0" encoding="UTF-8"?>
<assessmentItem xmlns="http://www.imsglobal.org/xsd/imsqti_v2p1"
    xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance"
    xsi:schemaLocation="http://www.imsglobal.org/xsd/imsqti_v2p1
      http://www.imsglobal.org/xsd/qti/qtiv2p1/imsqti_v2p1.xsd"
    identifier="choice-fractions-07" title="Equivalent fractions" adaptive="false"
    timeDependent="false" toolName="Authoring Suite" toolVersion="4.2">
  <responseDeclaration identifier="RESPONSE" cardinality="single" baseType="identifier">
    <correctResponse>
      <value>ChoiceC</value>
    </correctResponse>
  </responseDeclaration>
  <outcomeDeclaration identifier="SCORE" cardinality="single" baseType="float">
    <defaultValue><value>0</value></defaultValue>
  </outcomeDeclaration>
  <outcomeDeclaration identifier="FEEDBACK" cardinality="single" baseType="identifier"/>
  <itemBody>
    <p>Look at the   shaded part of
       the figure.</p>
    <p><img src="images/fraction-bar.png" alt="A bar in eight parts" width="320"/></p>
    <choiceInteraction responseIdentifier="RESPONSE" shuffle="true" maxChoices="1">
      <prompt>Which fraction is equal to <b>3/4</b>?</prompt>
      <simpleChoice identifier="ChoiceA" fixed="false">3/8</simpleChoice>
      <simpleChoice identifier="ChoiceB" fixed="false">
        4/3
      </simpleChoice>
      <simpleChoice identifier="ChoiceC" fixed="false">6/8<feedbackInline
          outcomeIdentifier="FEEDBACK" identifier="ChoiceC" showHide="show">Yes!</feedbackInline>
      </simpleChoice>
      <simpleChoice identifier="ChoiceD" fixed="true">None of these</simpleChoice>
    </choiceInteraction>
  </itemBody>
  <responseProcessing
      template="http://www.imsglobal.org/question/qti_v2p1/rptemplates/match_correct"/>
  <modalFeedback outcomeIdentifier="FEEDBACK" identifier="ChoiceC" showHide="show">
    Well done.
  </modalFeedback>
</assessmentItem>
"""


def test_qti21_item_import() -> None:
    (record,) = read_qti(QTI21_ITEM, "fractions.xml")
    assert record == ItemRecord(
        item_id="choice-fractions-07",
        stem="Look at the shaded part of the figure.\nWhich fraction is equal to 3/4?",
        options=["3/8", "4/3", "6/8", "None of these"],
        key=2,
        media=["images/fraction-bar.png"],
    )


def test_foreign_qti3_item_with_rationale_rubric() -> None:
    xml = f"""<qti-assessment-item xmlns="{QTI3_NS}" identifier="Q-9" title="t"
      time-dependent="false">
      <qti-response-declaration identifier="R1" cardinality="single" base-type="identifier">
        <qti-correct-response><qti-value>no</qti-value></qti-correct-response>
      </qti-response-declaration>
      <qti-item-body>
        <qti-rubric-block use="ext:rationale" view="scorer">
          <qti-content-body><p>Water boils at
             100 &#176;C at sea level.</p></qti-content-body>
        </qti-rubric-block>
        <qti-rubric-block use="instructions" view="candidate">
          <qti-content-body><p>Read carefully.</p></qti-content-body>
        </qti-rubric-block>
        <div><qti-choice-interaction response-identifier="R1" max-choices="1">
          <qti-prompt>Does water boil at 50 &#176;C?</qti-prompt>
          <qti-simple-choice identifier="yes">Yes</qti-simple-choice>
          <qti-simple-choice identifier="no">No</qti-simple-choice>
        </qti-choice-interaction></div>
      </qti-item-body>
    </qti-assessment-item>""".encode()
    (record,) = read_qti(xml)
    assert record.stem == "Does water boil at 50 °C?"
    assert record.rationale == "Water boils at 100 °C at sea level."
    assert (record.options, record.key) == (["Yes", "No"], 1)


# -- QTI errors ---------------------------------------------------------------------------------


def _item3(body: str, *, correct: str = "A", identifier: str = 'identifier="E-1"') -> bytes:
    return f"""<?xml version="1.0" encoding="UTF-8"?>
<qti-assessment-item xmlns="{QTI3_NS}" {identifier} title="t" time-dependent="false">
  <qti-response-declaration identifier="RESPONSE" cardinality="single" base-type="identifier">
    <qti-correct-response><qti-value>{correct}</qti-value></qti-correct-response>
  </qti-response-declaration>
  <qti-item-body>
    <p>Stem</p>
{body}
  </qti-item-body>
</qti-assessment-item>
""".encode()


CHOICES = """    <qti-choice-interaction response-identifier="RESPONSE" max-choices="1">
      <qti-simple-choice identifier="A">a</qti-simple-choice>
      <qti-simple-choice identifier="B">b</qti-simple-choice>
    </qti-choice-interaction>"""


@pytest.mark.parametrize(
    ("xml", "field", "line", "words"),
    [
        (
            _item3('    <qti-choice-interaction response-identifier="RESPONSE" max-choices="1"/>'),
            "qti-choice-interaction",
            8,
            "has no qti-simple-choice",
        ),
        (_item3(CHOICES, correct="Z"), "qti-value", 4, "'Z' is not one of the choices (A, B)"),
        (_item3(CHOICES, identifier=""), "qti-assessment-item/@identifier", 2, "no identifier"),
        (
            _item3('    <qti-text-entry-interaction response-identifier="RESPONSE"/>'),
            "qti-text-entry-interaction",
            8,
            "unsupported interaction qti-text-entry-interaction",
        ),
        (
            _item3(CHOICES.replace('max-choices="1"', 'max-choices="0"')),
            "qti-choice-interaction/@max-choices",
            8,
            "only single-choice",
        ),
        (
            _item3(CHOICES.replace('identifier="B"', 'identifier="A"')),
            "qti-simple-choice/@identifier",
            10,
            "appears twice",
        ),
        (
            _item3(CHOICES.replace('response-identifier="RESPONSE"', 'response-identifier="R9"')),
            "qti-choice-interaction/@response-identifier",
            8,
            "names no qti-response-declaration",
        ),
        (_item3(""), "qti-item-body", 6, "no qti-choice-interaction"),
    ],
)
def test_qti_errors_name_element_and_line(xml: bytes, field: str, line: int, words: str) -> None:
    error = _error(read_qti, xml, "item.xml")
    assert (error.field, error.line, error.source) == (field, line, "item.xml")
    assert str(error).startswith(f"item.xml: element {field} (line {line}): ")
    assert words in str(error)


def test_qti21_errors_use_qti21_names() -> None:
    xml = QTI21_ITEM.replace(b'identifier="ChoiceB"', b'identifier="ChoiceA"')
    error = _error(read_qti, xml, "f.xml")
    assert error.field == "simpleChoice/@identifier" and "appears twice" in str(error)
    xml = QTI21_ITEM.replace(
        b"<value>ChoiceC</value>", b"<value>ChoiceC</value><value>ChoiceD</value>"
    )
    assert "more than one correct value" in str(_error(read_qti, xml))


def test_choices_without_text_and_single_choices_are_refused() -> None:
    image_only = CHOICES.replace(">b<", '><img src="b.png" alt="b"/><')
    error = _error(read_qti, _item3(image_only))
    assert (error.field, error.line) == ("qti-simple-choice", 10)
    assert "option_2 is empty" in str(error)
    one = "\n".join(line for line in CHOICES.splitlines() if 'identifier="B"' not in line)
    assert "needs at least 2 options, got 1" in str(_error(read_qti, _item3(one)))


def test_second_interaction_is_refused() -> None:
    error = _error(read_qti, _item3(CHOICES + "\n" + CHOICES))
    assert (error.field, error.line) == ("qti-choice-interaction", 12)
    assert "a second interaction" in str(error)


def test_usage_data_of_other_glossaries_is_ignored_and_read_without_manifest() -> None:
    record = sample_records()[3]
    package = write_qti_package([record])
    with zipfile.ZipFile(io.BytesIO(package)) as archive:
        item, usage = archive.read("items/ALG-004.xml"), archive.read("usage-data.xml")
    foreign = usage.replace(
        b"</usageData>",
        b'<ordinaryStatistic name="irt_a" glossary="urn:other" context="urn:c">'
        b'<targetObject identifier="ALG-004"/><value>9</value></ordinaryStatistic>'
        b'<ordinaryStatistic name="P-value" context="urn:c"><targetObject identifier="X"/>'
        b"<value>0.6</value></ordinaryStatistic></usageData>",
    )
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("a.xml", item)
        archive.writestr("stats/usage.xml", foreign)
    (back,) = read_qti(buffer.getvalue())
    assert back.parameters == record.parameters


def test_malformed_xml_reports_lxml_line() -> None:
    error = _error(read_qti, b"<?xml version='1.0'?>\n<a>\n  <b>\n</a>\n", "broken.xml")
    assert error.line == 4 and "broken.xml: malformed XML at line 4" in str(error)
    error = _error(read_qti, b"<notqti/>")
    assert error.field == "notqti" and "is not a QTI assessment item" in str(error)


def _replace_in_zip(package: bytes, name: str, old: bytes, new: bytes) -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(io.BytesIO(package)) as source, zipfile.ZipFile(out, "w") as target:
        for info in source.infolist():
            data = source.read(info)
            target.writestr(
                info.filename, data.replace(old, new) if info.filename == name else data
            )
    return out.getvalue()


def test_package_errors_name_file_element_and_line() -> None:
    package = write_qti_package(sample_records()[:3])
    bad = _replace_in_zip(package, "usage-data.xml", b"<value>1.7</value>", b"<value>x</value>")
    bad = _replace_in_zip(bad, "items/ALG-002.xml", b"</qti-simple-choice>", b"</qti-choice>")
    bad = _replace_in_zip(bad, "imsmanifest.xml", b"<cat:status>pretest", b"<cat:status>final")
    error = _error(read_qti, bad, "bank.zip")
    problems = " | ".join(error.problems)
    assert error.source == "imsmanifest.xml" and error.field == "status"
    assert "items/ALG-002.xml: malformed XML at line" in problems
    assert "usage-data.xml: element ordinaryStatistic (line" in problems
    assert "irt_a of item 'ALG-003': 'x' is not a number" in problems
    assert "usage data for 'ALG-002', which is not an item of the package" in problems
    invalid = _replace_in_zip(package, "usage-data.xml", b"<value>1pl", b"<value>3pl")
    error = _error(read_qti, invalid)
    assert error.source == "usage-data.xml" and "irt_c of item 'ALG-003' is required" in str(error)


def test_package_usage_data_for_unknown_item_and_missing_file() -> None:
    package = write_qti_package(sample_records()[:2])
    orphan = _replace_in_zip(package, "usage-data.xml", b'identifier="ALG-002"', b'identifier="Q"')
    assert "usage data for 'Q', which is not an item" in str(_error(read_qti, orphan))
    missing = _replace_in_zip(
        package, "imsmanifest.xml", b'href="items/ALG-002.xml"', b'href="items/ALG-404.xml"'
    )
    error = _error(read_qti, missing)
    assert error.source == "imsmanifest.xml" and "'items/ALG-404.xml' is not in the package" in str(
        error
    )


# -- hostile input ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "prolog",
    [
        b'<!DOCTYPE qti-assessment-item [<!ENTITY xxe SYSTEM "file:///etc/passwd">]>\n',
        b'<!DOCTYPE x [<!ENTITY a "aaaaaaaaaa"><!ENTITY b "&a;&a;&a;&a;&a;&a;&a;&a;">]>\n',
        b'<!DOCTYPE x SYSTEM "http://example.org/evil.dtd">\n',
    ],
)
def test_xml_with_doctype_or_entities_is_refused(prolog: bytes) -> None:
    xml = _item3(CHOICES).replace(b"<p>Stem</p>", b"<p>&xxe;</p>")
    xml = xml.replace(b"<qti-assessment-item", prolog + b"<qti-assessment-item", 1)
    error = _error(read_qti, xml, "evil.xml")
    assert "DOCTYPE or ENTITY declaration is not allowed" in str(error) and error.line == 2
    package = write_qti_package(sample_records()[:1])
    inside = _replace_in_zip(
        package, "items/ALG-001.xml", b"<qti-assessment-item", prolog + b"<qti-assessment-item"
    )
    assert _error(read_qti, inside).source == "items/ALG-001.xml"


def test_zip_bomb_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(qti_package, "MAX_PACKAGE_BYTES", 100_000)
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("item.xml", b"<a>" + b" " * 200_000 + b"</a>")
    assert len(buffer.getvalue()) < 2_000
    assert "more than 0 MB uncompressed" in str(_error(read_qti, buffer.getvalue(), "bomb.zip"))


def test_zip_member_lying_about_its_size_is_refused() -> None:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("item.xml", b"<a>" + b" " * 50_000 + b"</a>")
    data = bytearray(buffer.getvalue())
    size = (50_007).to_bytes(4, "little")
    for start in (0, data.rindex(b"PK\x01\x02")):  # local header and central directory
        at = data.index(size, start)
        data[at : at + 4] = (10).to_bytes(4, "little")
    error = _error(read_qti, bytes(data))
    assert error.source == "item.xml" and "cannot be read from the zip" in str(error)


def test_too_many_zip_members_are_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(qti_package, "MAX_PACKAGE_MEMBERS", 3)
    package = write_qti_package(sample_records()[:4])
    assert "more than the 3 allowed" in str(_error(read_qti, package))


@pytest.mark.parametrize("name", ["../escape.xml", "/etc/item.xml", "a\\..\\b.xml", "C:/x.xml"])
def test_zip_path_traversal_is_refused(name: str) -> None:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr(zipfile.ZipInfo(name), write_qti_item(sample_records()[0]))
    error = _error(read_qti, buffer.getvalue(), "evil.zip")
    assert "unsafe file name" in str(error) and error.source == name


def test_manifest_reference_out_of_the_package_is_refused() -> None:
    package = write_qti_package(sample_records()[:1])
    evil = _replace_in_zip(
        package, "imsmanifest.xml", b'href="items/ALG-001.xml"', b'href="../../items/ALG-001.xml"'
    )
    error = _error(read_qti, evil)
    assert error.field == "resource/@href" and "climbs out of the package" in str(error)


def test_not_a_zip_and_not_xml() -> None:
    assert "malformed XML" in str(_error(read_qti, b"\x00\x01binary"))
    empty = io.BytesIO()
    zipfile.ZipFile(empty, "w").close()
    assert "e.zip: holds no imsmanifest.xml and no QTI items" in str(
        _error(read_qti, empty.getvalue(), "e.zip")
    )
    assert read_qti(write_qti_package([])) == []
    broken = struct.pack("<4s4H2LH", b"PK\x05\x06", 0, 0, 1, 1, 46, 0, 0)
    assert "not a readable zip" in str(_error(read_qti, broken))


def test_every_unknown_column_is_named_with_the_column_meant() -> None:
    text = "item_id,question,option1,option_2,correct,skil,colour\nU-1,What?,a,b,0,algebra,red\n"
    error = _error(read_items_csv, text)
    unknown = [(d["line"], d["field"], d["message"]) for d in error.details
               if "unknown column" in d["message"]]
    assert unknown == [
        (1, "question", "line 1: unknown column 'question' (did you mean 'stem'?)"),
        (1, "option1", "line 1: unknown column 'option1' (did you mean 'option_1'?)"),
        (1, "correct", "line 1: unknown column 'correct' (did you mean 'key'?)"),
        (1, "skil", "line 1: unknown column 'skil' (did you mean 'skill'?)"),
        (1, "colour", "line 1: unknown column 'colour'"),
    ]
    assert error.problems == [d["message"] for d in error.details]
    assert (error.line, error.field) == (1, "question")


def test_unknown_columns_and_the_rows_problems_are_reported_at_once() -> None:
    text = ("item_id,stem,option_1,option_2,key,skill,colour,size\n"
            "U-1,What?,a,b,1,algebra,red,L\n"
            "U-2,What?,a,b,7,algebra,blue,M\n"
            "U-1,Again?,a,b,2,algebra,green,S\n")
    error = _error(read_items_csv, text)
    assert [(d["line"], d["field"]) for d in error.details] == [
        (1, "colour"), (1, "size"), (3, "key"), (4, "item_id")]
    assert "'U-1' appears again (first on line 2)" in error.details[3]["message"]
