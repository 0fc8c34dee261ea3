"""QTI content packages (zip): items, their parameters and metadata together; :func:`read_qti`.

A package (:func:`write_qti_package`) is a zip holding ``imsmanifest.xml`` (IMS content package,
QTI 3.0 profile), ``items/<item_id>.xml`` (the id made file-safe; resource type
``imsqti_item_xmlv3p0``, see :mod:`item_bank.interchange.qti`) and ``usage-data.xml`` (resource
type ``qtiusagedata/xml``, see :mod:`item_bank.interchange.usage_data`). Skill, tags and status are
kept in each item resource's ``<metadata>`` as ``<cat:item-data>`` in the namespace
:data:`CAT_NS`::

    <cat:item-data><cat:skill>algebra</cat:skill><cat:status>pretest</cat:status>
      <cat:tag>linear</cat:tag><cat:tag>grade-8</cat:tag></cat:item-data>

:func:`read_qti` reads a package, a plain zip of item files, or a single item document.

Safety: zip packages are limited to :data:`MAX_PACKAGE_BYTES` uncompressed and
:data:`MAX_PACKAGE_MEMBERS` members (read here, so set them on this module), and member names or
manifest references that are absolute or climb out of the package are refused; XML is parsed as
:mod:`item_bank.interchange.xml_io` describes.
"""

from __future__ import annotations

import dataclasses
import io
import posixpath
import re
import zipfile
from collections.abc import Iterable, Mapping, Sequence
from urllib.parse import unquote

from lxml import etree

from item_bank.interchange.qti import item_dialect, item_element, read_item
from item_bank.interchange.records import (
    STATUSES,
    InterchangeError,
    ItemRecord,
    Problems,
    TranslationRecord,
    check_records,
)
from item_bank.interchange.usage_data import (
    UsageStats,
    is_usage,
    parameters_from_usage,
    read_usage,
    usage_data_element,
)
from item_bank.interchange.xml_io import XSI_NS, indent, local_name, parse_xml, to_bytes

MAX_PACKAGE_BYTES = 50 * 1024 * 1024
MAX_PACKAGE_MEMBERS = 5000
CP3_NS = "http://www.imsglobal.org/xsd/qti/qtiv3p0/imscp_v1p1"
CAT_NS = "urn:x-cat-engine:item-metadata:1"

_XML_BASE = "{http://www.w3.org/XML/1998/namespace}base"
_SCHEMA_LOCATION = (
    "https://purl.imsglobal.org/spec/qti/v3p0/schema/xsd/imsqtiv3p0_imscpv1p2_v1p0.xsd"
)


# -- writing ------------------------------------------------------------------------------------


def _safe_names(records: Sequence[ItemRecord]) -> list[str]:
    names, taken = [], set()
    for record in records:
        base = re.sub(r"[^A-Za-z0-9_.-]", "_", record.item_id).lstrip(".") or "item"
        name, n = base, 1
        while name.lower() in taken:
            n += 1
            name = f"{base}-{n}"
        taken.add(name.lower())
        names.append(name)
    return names


def _manifest(
    records: Sequence[ItemRecord], paths: Sequence[str], media: Iterable[str], usage: bool
) -> etree._Element:
    cp = f"{{{CP3_NS}}}"
    cat = f"{{{CAT_NS}}}"
    root = etree.Element(
        f"{cp}manifest",
        nsmap={None: CP3_NS, "cat": CAT_NS, "xsi": XSI_NS},
        identifier="cat-engine-package",
    )
    root.set(f"{{{XSI_NS}}}schemaLocation", f"{CP3_NS} {_SCHEMA_LOCATION}")
    metadata = etree.SubElement(root, f"{cp}metadata")
    etree.SubElement(metadata, f"{cp}schema").text = "QTI Package"
    etree.SubElement(metadata, f"{cp}schemaversion").text = "3.0.0"
    etree.SubElement(root, f"{cp}organizations")
    resources = etree.SubElement(root, f"{cp}resources")
    media = set(media)
    for record, path in zip(records, paths, strict=True):
        resource = etree.SubElement(
            resources,
            f"{cp}resource",
            identifier="item-" + posixpath.basename(path)[:-4],
            type="imsqti_item_xmlv3p0",
            href=path,
        )
        data = etree.SubElement(etree.SubElement(resource, f"{cp}metadata"), f"{cat}item-data")
        if record.skill:
            etree.SubElement(data, f"{cat}skill").text = record.skill
        etree.SubElement(data, f"{cat}status").text = record.status
        for tag in record.content_tags:
            etree.SubElement(data, f"{cat}tag").text = tag
        etree.SubElement(resource, f"{cp}file", href=path)
        for ref in dict.fromkeys(record.media):
            if ref in media:
                etree.SubElement(resource, f"{cp}file", href=ref)
    if usage:
        resource = etree.SubElement(
            resources,
            f"{cp}resource",
            identifier="usage-data",
            type="qtiusagedata/xml",
            href="usage-data.xml",
        )
        etree.SubElement(resource, f"{cp}file", href="usage-data.xml")
    indent(root)
    return root


def write_qti_package(
    records: Iterable[ItemRecord], media: Mapping[str, bytes] | None = None
) -> bytes:
    """Items as a QTI 3.0 content package (zip), parameters included as usage data.

    Parameters
    ----------
    records : iterable of ItemRecord
        Each needs at least two options; item ids must be unique.
    media : mapping of str to bytes, optional
        Media files to include, keyed by their path in the package, which items reference in
        ``ItemRecord.media``; each is listed as a ``<file>`` of the items using it.

    Returns
    -------
    bytes
        A zip with ``imsmanifest.xml``, ``items/<item_id>.xml`` and, when any item has parameters,
        ``usage-data.xml``. The bytes are deterministic (fixed timestamps).

    Raises
    ------
    InterchangeError
        Naming every record that cannot be written, and media paths that are unsafe or unused.
    """
    records = list(records)
    check_records(records, qti=True)
    media = dict(media or {})
    referenced = {ref for r in records for ref in r.media}
    problems = Problems()
    for path in media:
        if (
            _member_problem(path)
            or path in ("imsmanifest.xml", "usage-data.xml")
            or path.startswith("items/")
        ):
            problems.add(
                f"media path {path!r} is not allowed (use a relative path outside items/)",
                field="media",
            )
        elif path not in referenced:
            problems.add(f"media file {path!r} is not referenced by any item", field="media")
    problems.raise_if_any()
    names = _safe_names(records)
    # One assessment item per language version: the item's own, then each translation
    # (same identifier, its own xml:lang), as items/<name>.xml and items/<name>.<language>.xml.
    versions: list[ItemRecord] = []
    paths: list[str] = []
    for record, name in zip(records, names, strict=True):
        versions.append(record)
        paths.append(f"items/{name}.xml")
        for language, text in sorted(record.translations.items()):
            versions.append(dataclasses.replace(
                record, stem=text.stem, options=list(text.options), rationale=text.rationale,
                language=language, translations={}, parameters=None))
            paths.append(f"items/{name}.{re.sub(r'[^A-Za-z0-9-]', '_', language)}.xml")
    usage = usage_data_element(records)
    files = {"imsmanifest.xml": to_bytes(_manifest(versions, paths, media, usage is not None))}
    for record, path in zip(versions, paths, strict=True):
        files[path] = to_bytes(item_element(record, "3.0"))
    if usage is not None:
        files["usage-data.xml"] = to_bytes(usage)
    files.update(media)
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, content in files.items():
            info = zipfile.ZipInfo(name, date_time=(1980, 1, 1, 0, 0, 0))
            info.compress_type = zipfile.ZIP_DEFLATED
            archive.writestr(info, content)
    return buffer.getvalue()


# -- reading ------------------------------------------------------------------------------------


def _member_problem(name: str) -> str | None:
    """Why a path inside a package is unsafe, or None."""
    if not name or name.startswith(("/", "\\")) or "\\" in name or "\x00" in name:
        return "is absolute or contains backslashes"
    if re.match(r"[A-Za-z]:", name):
        return "has a drive letter"
    if ".." in name.split("/"):
        return "climbs out of the package ('..')"
    return None


class _Archive:
    """Reads members of an untrusted zip within a total budget of uncompressed bytes."""

    def __init__(self, data: bytes, filename: str) -> None:
        label = filename or "the package"
        try:
            self.zip = zipfile.ZipFile(io.BytesIO(data))
            infos = self.zip.infolist()
        except (zipfile.BadZipFile, zipfile.LargeZipFile, ValueError) as exc:
            raise InterchangeError(f"{label}: not a readable zip file ({exc})") from None
        if len(infos) > MAX_PACKAGE_MEMBERS:
            raise InterchangeError(
                f"{label}: {len(infos)} files, more than the {MAX_PACKAGE_MEMBERS} allowed"
            )
        if sum(i.file_size for i in infos) > MAX_PACKAGE_BYTES:
            raise InterchangeError(
                f"{label}: more than {MAX_PACKAGE_BYTES // 2**20} MB uncompressed"
            )
        problems = Problems()
        for info in infos:
            if problem := _member_problem(info.filename):
                problems.add(
                    f"{label}: unsafe file name {info.filename!r}: {problem}", source=info.filename
                )
            elif info.flag_bits & 0x1:
                problems.add(f"{label}: {info.filename!r} is encrypted", source=info.filename)
        problems.raise_if_any()
        self.infos = {i.filename: i for i in infos if not i.is_dir()}
        self.budget = MAX_PACKAGE_BYTES

    def read(self, name: str) -> bytes:
        info = self.infos[name]
        chunks, size = [], 0
        try:
            with self.zip.open(info) as member:
                while chunk := member.read(65536):
                    size += len(chunk)
                    if size > info.file_size or size > self.budget:
                        raise InterchangeError(
                            f"{name}: expands beyond its declared size or the "
                            f"{MAX_PACKAGE_BYTES // 2**20} MB limit",
                            source=name,
                        )
                    chunks.append(chunk)
        except (zipfile.BadZipFile, OSError, EOFError, ValueError) as exc:
            if isinstance(exc, InterchangeError):
                raise
            raise InterchangeError(
                f"{name}: cannot be read from the zip ({exc})", source=name
            ) from None
        self.budget -= size
        return b"".join(chunks)


def _read_manifest(archive: _Archive, problems: Problems):
    """Item paths (with their metadata element) and usage-data paths listed in the manifest."""
    root = parse_xml(archive.read("imsmanifest.xml"), "imsmanifest.xml", problems)
    if root is None:
        return [], []
    if local_name(root) != "manifest":
        problems.at(root, "imsmanifest.xml", "the root element must be a manifest")
        return [], []
    items, usage = [], []
    for resources in (e for e in root if local_name(e) == "resources"):
        base = resources.get(_XML_BASE) or ""
        for resource in (e for e in resources if local_name(e) == "resource"):
            kind = resource.get("type") or ""
            is_item = kind.startswith("imsqti_item_xml")
            if not is_item and kind != "qtiusagedata/xml" and "usagedata" not in kind.lower():
                continue
            href = resource.get("href")
            if not href:
                files = [e.get("href") for e in resource if local_name(e) == "file"]
                href = files[0] if files else None
            if not href:
                problems.at(resource, "imsmanifest.xml", "the resource has no href", attr="href")
                continue
            path = posixpath.normpath(posixpath.join(base, resource.get(_XML_BASE) or "", href))
            if path not in archive.infos and unquote(path) in archive.infos:
                path = unquote(path)
            if problem := _member_problem(path):
                problems.at(resource, "imsmanifest.xml", f"{href!r} {problem}", attr="href")
            elif path not in archive.infos:
                problems.at(
                    resource, "imsmanifest.xml", f"{href!r} is not in the package", attr="href"
                )
            elif is_item:
                metadata = next(
                    (
                        m
                        for e in resource
                        if local_name(e) == "metadata"
                        for m in e.iterchildren(f"{{{CAT_NS}}}item-data")
                    ),
                    None,
                )
                items.append((path, metadata))
            else:
                usage.append(path)
    return items, usage


def _apply_metadata(record: ItemRecord, metadata: etree._Element, problems: Problems) -> None:
    def texts(name: str) -> list[tuple[str, etree._Element]]:
        return [((e.text or "").strip(), e) for e in metadata.iterchildren(f"{{{CAT_NS}}}{name}")]

    for value, _ in texts("skill")[:1]:
        record.skill = value
    for value, el in texts("status")[:1]:
        if value not in STATUSES:
            problems.at(
                el,
                "imsmanifest.xml",
                f"{value!r} is not one of {', '.join(STATUSES)}",
                item_id=record.item_id,
            )
        record.status = value
    record.content_tags = [value for value, _ in texts("tag") if value]
    for value, el in texts("tag"):
        if ";" in value:
            problems.at(
                el, "imsmanifest.xml", f"the tag {value!r} contains ';'", item_id=record.item_id
            )


def _add_translation(item: ItemRecord, version: ItemRecord, source: str,
                     root: etree._Element, problems: Problems) -> None:
    """Attach an item's version in another language (same identifier, its own ``xml:lang``)
    to the item: as many choices, the same correct response."""
    where = f"the {version.language!r} version of item {item.item_id!r}"
    if len(version.options) != len(item.options):
        problems.at(root, source, f"{where} has {len(version.options)} choices; the item has "
                    f"{len(item.options)}", item_id=item.item_id)
    elif version.key != item.key:
        problems.at(root, source, f"{where} has another correct response than the item",
                    item_id=item.item_id)
    item.translations[version.language] = TranslationRecord(
        version.stem, list(version.options), version.rationale)


def read_qti(data: bytes, filename: str = "") -> list[ItemRecord]:
    """Read single-choice items from a QTI item document or a zip package.

    Parameters
    ----------
    data : bytes
        A QTI 3.0 ``qti-assessment-item``, a QTI 2.1 (or 2.2) ``assessmentItem``, or a zip:
        a content package with ``imsmanifest.xml`` (items, usage data and our item metadata are
        read from the resources it lists) or a plain zip of item XML files (every ``.xml`` file
        that is an item or usage data is read; others are ignored).
    filename : str, optional
        Name of the upload, used in error messages.

    Returns
    -------
    list of ItemRecord
        In manifest (or zip) order; parameters come from usage data, skill, tags and status from
        the manifest (defaults for single files).

    Raises
    ------
    InterchangeError
        Listing every problem, each naming the file, the element and its source line.
    """
    problems = Problems()
    items: list[tuple[ItemRecord, str, etree._Element]] = []
    stats: UsageStats = {}
    if not zipfile.is_zipfile(io.BytesIO(data)):
        if len(data) > MAX_PACKAGE_BYTES:
            raise InterchangeError(
                f"{filename or 'the file'}: larger than {MAX_PACKAGE_BYTES // 2**20} MB"
            )
        root = parse_xml(data, filename, problems)
        if root is not None and (dialect := item_dialect(root)) is None:
            problems.at(
                root,
                filename,
                "is not a QTI assessment item: expected "
                "qti-assessment-item (QTI 3.0), assessmentItem (QTI 2.1) "
                "or a zip package",
            )
        elif root is not None and (record := read_item(root, dialect, filename, problems)):
            items.append((record, filename, root))
        problems.raise_if_any()
        return [record for record, _, _ in items]
    archive = _Archive(data, filename)
    if "imsmanifest.xml" in archive.infos:
        item_paths, usage_paths = _read_manifest(archive, problems)
        strict = True
    else:
        names = [
            n for n in archive.infos if n.lower().endswith(".xml") and not n.startswith("__MACOSX/")
        ]
        item_paths, usage_paths, strict = [(n, None) for n in names], [], False
    for path, metadata in item_paths:
        root = parse_xml(archive.read(path), path, problems)
        if root is None:
            continue
        if (dialect := item_dialect(root)) is not None:
            record = read_item(root, dialect, path, problems)
            if record is not None:
                if metadata is not None:
                    _apply_metadata(record, metadata, problems)
                items.append((record, path, root))
        elif is_usage(root) and not strict:
            read_usage(root, path, problems, stats)
        elif strict:
            problems.at(
                root,
                path,
                "the manifest lists this file as an item, but it is not a QTI assessment item",
            )
    for path in usage_paths:
        root = parse_xml(archive.read(path), path, problems)
        if root is not None and not is_usage(root):
            problems.at(
                root,
                path,
                "the manifest lists this file as usage data, but it is not a usageData document",
            )
        elif root is not None:
            read_usage(root, path, problems, stats)
    if not strict and not items and not len(problems):
        problems.add(f"{filename or 'the zip'}: holds no imsmanifest.xml and no QTI items")
    first_source: dict[str, str] = {}
    first: dict[str, ItemRecord] = {}
    versions = []
    for record, source, root in items:
        original = first.get(record.item_id)
        if original is not None and record.language and record.language != original.language \
                and record.language not in original.translations:
            _add_translation(original, record, source, root, problems)
            continue
        versions.append((record, source, root))
        first.setdefault(record.item_id, record)
        if record.item_id in first_source:
            problems.at(
                root,
                source,
                f"the item identifier {record.item_id!r} is also used by "
                f"{first_source[record.item_id]}",
                attr="identifier",
                item_id=record.item_id,
            )
        first_source.setdefault(record.item_id, source)
    items = versions
    by_id = {record.item_id: record for record, _, _ in items}
    for item_id, found in stats.items():
        if item_id not in by_id:
            _, el, source = next(iter(found.values()))
            problems.at(
                el,
                source,
                f"usage data for {item_id!r}, which is not an item of the package",
                item_id=item_id,
            )
        else:
            by_id[item_id].parameters = parameters_from_usage(item_id, found, problems)
    problems.raise_if_any()
    return [record for record, _, _ in items]
