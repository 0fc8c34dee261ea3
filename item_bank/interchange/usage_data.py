"""IRT parameters as QTI Usage Data ("Usage Data and Item Statistics").

Namespace ``http://www.imsglobal.org/xsd/imsqti_usagedata_v3p0``, schema
``imsqti_usagedatav3p0_v1p0.xsd`` (2.1: ``imsqti_usagedata_v2p1``, same structure), one
``ordinaryStatistic`` per parameter::

    <usageData xmlns="http://www.imsglobal.org/xsd/imsqti_usagedata_v3p0" glossary="GLOSSARY">
      <ordinaryStatistic name="irt_a" glossary="GLOSSARY" context="CONTEXT">
        <targetObject identifier="ALG-001"/>
        <value>1.25</value>
      </ordinaryStatistic>
      ...

(the form of the 1EdTech example ``qtiv3-examples/usageData/example.xml`` in
``1EdTech/qti-examples`` and of the IMS "QTI Usage Data & Item Statistics 3.0" binding, 2022),
with :data:`USAGE_GLOSSARY` as glossary, :data:`USAGE_CONTEXT` as context and the names
``irt_model`` (value ``rasch``, ``1pl``, ..., ``pcm``), ``irt_a``, ``irt_b``, ``irt_c``, ``irt_d``
and ``irt_b1..irt_bk`` (thresholds). On import, statistics with other names or another glossary are
ignored. A package (:mod:`item_bank.interchange.qti_package`) holds one such document.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from lxml import etree

from item_bank.interchange.records import (
    NUMBER_FIELDS,
    THRESHOLD_NAME,
    ItemRecord,
    ParameterRecord,
    Problems,
    parameter_problems,
)
from item_bank.interchange.xml_io import XSI_NS, indent, local_name

USAGE3_NS = "http://www.imsglobal.org/xsd/imsqti_usagedata_v3p0"
USAGE_NAMESPACES = (
    USAGE3_NS,
    "http://www.imsglobal.org/xsd/imsqti_usagedata_v2p1",
    "http://www.imsglobal.org/xsd/imsqti_usagedata_v2p2",
)
USAGE_GLOSSARY = "urn:x-cat-engine:irt-glossary:1"
USAGE_CONTEXT = "urn:x-cat-engine:item-bank"

_SCHEMA_LOCATION = (
    "https://purl.imsglobal.org/spec/qti/v3p0/schema/xsd/imsqti_usagedatav3p0_v1p0.xsd"
)


def usage_data_element(records: Sequence[ItemRecord]) -> etree._Element | None:
    """The ``usageData`` element holding the records' parameters; None when none has any."""
    root = etree.Element(f"{{{USAGE3_NS}}}usageData", nsmap={None: USAGE3_NS, "xsi": XSI_NS})
    root.set(f"{{{XSI_NS}}}schemaLocation", f"{USAGE3_NS} {_SCHEMA_LOCATION}")
    root.set("glossary", USAGE_GLOSSARY)
    for record in records:
        p = record.parameters
        if p is None:
            continue
        values = [("irt_model", p.model)]
        values += [
            (f"irt_{k}", repr(float(v))) for k in NUMBER_FIELDS if (v := getattr(p, k)) is not None
        ]
        values += [(f"irt_b{k}", repr(float(t))) for k, t in enumerate(p.thresholds or (), 1)]
        for name, value in values:
            stat = etree.SubElement(
                root,
                f"{{{USAGE3_NS}}}ordinaryStatistic",
                name=name,
                glossary=USAGE_GLOSSARY,
                context=USAGE_CONTEXT,
            )
            etree.SubElement(stat, f"{{{USAGE3_NS}}}targetObject", identifier=record.item_id)
            etree.SubElement(stat, f"{{{USAGE3_NS}}}value").text = value
    if not len(root):
        return None
    indent(root)
    return root


UsageStats = dict[str, dict[str, tuple[str, etree._Element, str]]]


def read_usage(root: etree._Element, source: str, problems: Problems, stats: UsageStats) -> None:
    """Gather the ``irt_*`` statistics of a usage-data document into ``stats[item_id][name]``."""
    ns = etree.QName(root).namespace
    default_glossary = root.get("glossary")
    for stat in root.iterchildren(etree.Element):
        name = stat.get("name") or ""
        glossary = stat.get("glossary") or default_glossary
        if not name.startswith("irt_") or glossary not in (None, USAGE_GLOSSARY):
            continue
        if local_name(stat) != "ordinaryStatistic":
            problems.at(stat, source, f"{name} must be an ordinaryStatistic")
            continue
        targets = list(stat.iterchildren(f"{{{ns}}}targetObject"))
        value = stat.find(f"{{{ns}}}value")
        if len(targets) != 1 or not (targets[0].get("identifier") or "").strip():
            problems.at(stat, source, f"{name} needs exactly one targetObject with an identifier")
            continue
        if value is None:
            problems.at(stat, source, f"{name} has no value")
            continue
        item_id = targets[0].get("identifier").strip()
        if name in stats.setdefault(item_id, {}):
            problems.at(stat, source, f"{name} of item {item_id!r} is given twice", item_id=item_id)
            continue
        stats[item_id][name] = ((value.text or "").strip(), stat, source)


def parameters_from_usage(
    item_id: str, found: dict[str, tuple[str, etree._Element, str]], problems: Problems
) -> ParameterRecord | None:
    """One item's parameters from its ``irt_*`` statistics, validated."""

    def at(name: str, text: str) -> None:
        _, el, source = found.get(name) or found.get("irt_model") or next(iter(found.values()))
        problems.at(el, source, text, item_id=item_id)

    numbers: dict[str, float] = {}
    bad = False
    for name, (text, _, _) in found.items():
        key = name[4:]
        if key == "model":
            continue
        if key not in NUMBER_FIELDS and not THRESHOLD_NAME.fullmatch(key):
            at(
                name,
                f"unknown IRT statistic {name!r} (known: irt_model, irt_a, irt_b, irt_c, "
                "irt_d, irt_b1..irt_bk)",
            )
            bad = True
            continue
        try:
            numbers[key] = float(text)
        except ValueError:
            at(name, f"{name} of item {item_id!r}: {text!r} is not a number")
            bad = True
            continue
        if not math.isfinite(numbers[key]):
            at(name, f"{name} of item {item_id!r}: {text!r} is not a finite number")
            bad = True
    if "irt_model" not in found:
        at("", f"item {item_id!r} has IRT statistics but no irt_model")
        return None
    n_thresholds = max((int(k[1:]) for k in numbers if THRESHOLD_NAME.fullmatch(k)), default=0)
    missing = [k for k in range(1, n_thresholds + 1) if f"b{k}" not in numbers]
    if missing:
        at(
            f"irt_b{n_thresholds}",
            f"item {item_id!r} has irt_b{n_thresholds} but no irt_b{missing[0]}",
        )
        bad = True
    if bad:
        return None
    p = ParameterRecord(
        found["irt_model"][0].lower(),
        *(numbers.get(k) for k in NUMBER_FIELDS),
        thresholds=[numbers[f"b{k}"] for k in range(1, n_thresholds + 1)] or None,
    )
    for key, text in parameter_problems(p):
        at(f"irt_{key}", f"irt_{key} of item {item_id!r} {text}")
    return p


def is_usage(root: etree._Element) -> bool:
    """Whether ``root`` is a usage-data document (QTI 3.0, 2.1 or 2.2 namespace)."""
    qname = etree.QName(root)
    return qname.localname == "usageData" and qname.namespace in USAGE_NAMESPACES
