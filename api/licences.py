"""The licences of cat-engine's installed dependencies, checked against an allow-list.

cat-engine is Apache-2.0. Its runtime dependencies (``install_requires`` in ``setup.cfg``, followed
transitively through each installed package's own requirements and extras) must carry licences
that let it be distributed under Apache-2.0: permissive ones, MPL-2.0 (file-level copyleft), and
LGPL for a library imported unmodified (psycopg: a user can replace it, which is what the LGPL
asks). GPL is allowed only in the ``test`` extra, which is never shipped with the product.

Each package's licence is read from its installed metadata, in this order: the SPDX
``License-Expression`` (PEP 639), a ``License`` field that is a short identifier, the ``License ::``
trove classifiers, and last the licence file shipped in its ``.dist-info`` (recognised by its
wording). ``cat-engine licences`` prints the list; ``tests/api/test_licences.py`` fails when a
runtime dependency's licence is not allowed or cannot be determined.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from importlib import metadata

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

PROJECT = "cat-engine"

#: SPDX identifiers (and classifier families) a runtime dependency may carry (MIT-0: MIT without
#: the attribution clause, e.g. cffi under cryptography, which LTI signing needs).
RUNTIME_ALLOWED = frozenset({
    "MIT", "MIT-0", "MIT-CMU", "BSD", "BSD-2-Clause", "BSD-3-Clause", "0BSD", "ISC", "Apache-2.0",
    "PSF-2.0", "Python-2.0", "Zlib", "CC0-1.0", "Unlicense", "HPND", "PostgreSQL", "MPL-2.0",
    "LGPL-2.1-only", "LGPL-2.1-or-later", "LGPL-3.0-only", "LGPL-3.0-or-later", "LGPL",
})
#: The test extra may also use GPL tools (never shipped).
TEST_ALLOWED = RUNTIME_ALLOWED | frozenset({
    "GPL", "GPL-2.0-only", "GPL-2.0-or-later", "GPL-3.0-only", "GPL-3.0-or-later",
})
#: Exceptions that allow linking a GPL library into anything (e.g. the GCC runtime in wheels).
LINKING_EXCEPTIONS = frozenset({"GCC-exception-3.1", "Classpath-exception-2.0", "LLVM-exception"})

_CLASSIFIERS = {
    "MIT License": "MIT",
    "BSD License": "BSD",
    "Apache Software License": "Apache-2.0",
    "Python Software Foundation License": "PSF-2.0",
    "ISC License (ISCL)": "ISC",
    "Mozilla Public License 2.0 (MPL 2.0)": "MPL-2.0",
    "GNU Lesser General Public License v3 (LGPLv3)": "LGPL-3.0-only",
    "GNU Lesser General Public License v3 or later (LGPLv3+)": "LGPL-3.0-or-later",
    "GNU Lesser General Public License v2 or later (LGPLv2+)": "LGPL-2.1-or-later",
    "GNU General Public License v2 (GPLv2)": "GPL-2.0-only",
    "GNU General Public License v3 (GPLv3)": "GPL-3.0-only",
    "GNU General Public License v3 or later (GPLv3+)": "GPL-3.0-or-later",
    "GNU Affero General Public License v3": "AGPL-3.0-only",
    "The Unlicense (Unlicense)": "Unlicense",
}
# Licence texts recognised by wording, most specific first.
_TEXTS = (
    ("GNU AFFERO GENERAL PUBLIC LICENSE", "AGPL-3.0-only"),
    ("GNU LESSER GENERAL PUBLIC LICENSE", "LGPL"),
    ("GNU GENERAL PUBLIC LICENSE", "GPL"),
    ("Mozilla Public License Version 2.0", "MPL-2.0"),
    ("Apache License", "Apache-2.0"),
    ("Permission is hereby granted, free of charge", "MIT"),
    ("Neither the name", "BSD-3-Clause"),
    ("Redistribution and use in source and binary forms", "BSD-2-Clause"),
    ("Permission to use, copy, modify, and/or distribute this software", "ISC"),
)
_SPDX_ID = re.compile(r"^[A-Za-z0-9.+-]+$")


@dataclass(frozen=True)
class Dependency:
    """An installed package that cat-engine needs, with its licence."""

    name: str
    version: str
    licence: str  # an SPDX expression, a classifier family, or "" when unknown
    source: str  # where the licence was read: expression, field, classifier, file, or ""
    required_by: str


def licence_of(dist: metadata.Distribution) -> tuple[str, str]:
    """The licence of an installed distribution and where it was read (see the module notes)."""
    meta = dist.metadata
    expression = (meta.get("License-Expression") or "").strip()
    if expression:
        return expression, "expression"
    field = (meta.get("License") or "").strip()
    if field and _SPDX_ID.match(field):
        return field, "field"
    found = []
    for classifier in meta.get_all("Classifier") or []:
        if classifier.startswith("License ::"):
            name = classifier.rsplit("::", 1)[-1].strip()
            found.append(_CLASSIFIERS.get(name, name))
    if found:
        return " OR ".join(dict.fromkeys(found)), "classifier"
    for file in dist.files or ():
        name = str(file)
        if ".dist-info/" in name and re.search(r"(LICEN[CS]E|COPYING)[^/]*$", name, re.I):
            text = file.locate().read_text(encoding="utf-8", errors="replace")
            for wording, spdx in _TEXTS:
                if wording.lower() in text.lower():
                    return spdx, "file"
    return "", ""


def runtime_dependencies(project: str = PROJECT, extra: str | None = None) -> list[Dependency]:
    """Every installed package ``project`` needs at run time, found through installed metadata
    and sorted by name; with ``extra``, the packages that extra adds (and what they need).

    Raises
    ------
    metadata.PackageNotFoundError
        ``project`` or a package it requires is not installed.
    """
    todo: list[tuple[Requirement, str]] = []
    for text in metadata.distribution(project).requires or ():
        requirement = Requirement(text)
        marker = requirement.marker
        if extra is None and (marker is None or marker.evaluate({"extra": ""})):
            todo.append((requirement, project))
        elif extra is not None and marker is not None and "extra" in str(marker) \
                and marker.evaluate({"extra": extra}):
            todo.append((requirement, f"{project}[{extra}]"))
    seen: dict[str, Dependency] = {}
    visited: set[tuple[str, frozenset[str]]] = set()
    while todo:
        requirement, parent = todo.pop()
        key = canonicalize_name(requirement.name)
        if (key, frozenset(requirement.extras)) in visited:
            continue
        visited.add((key, frozenset(requirement.extras)))
        dist = metadata.distribution(requirement.name)
        if key not in seen:
            licence, source = licence_of(dist)
            seen[key] = Dependency(name=dist.metadata["Name"], version=dist.version,
                                   licence=licence, source=source, required_by=parent)
        extras = ["", *sorted(requirement.extras)]
        for text in dist.requires or ():
            inner = Requirement(text)
            if inner.marker is None or any(inner.marker.evaluate({"extra": e}) for e in extras):
                todo.append((inner, dist.metadata["Name"]))
    return sorted(seen.values(), key=lambda d: canonicalize_name(d.name))


def allowed(expression: str, allow: frozenset[str]) -> bool:
    """Whether an SPDX licence expression is acceptable under ``allow``.

    ``A OR B`` needs one of them, ``A AND B`` both; ``A WITH X`` is ``A``, or acceptable outright
    when ``X`` is a linking exception. Parentheses group. An empty expression is not allowed.
    """
    tokens = re.findall(r"\(|\)|[^\s()]+", expression)
    if not tokens:
        return False
    position = 0

    def peek() -> str | None:
        return tokens[position] if position < len(tokens) else None

    def take() -> str:
        nonlocal position
        position += 1
        return tokens[position - 1]

    def term() -> bool:
        if peek() == "(":
            take()
            value = either()
            if peek() == ")":
                take()
            return value
        name = take()
        if peek() is not None and peek().upper() == "WITH":
            take()
            exception = take()
            return name in allow or exception in LINKING_EXCEPTIONS
        return name in allow

    def both() -> bool:
        value = term()
        while peek() is not None and peek().upper() == "AND":
            take()
            value = term() and value
        return value

    def either() -> bool:
        value = both()
        while peek() is not None and peek().upper() == "OR":
            take()
            value = both() or value
        return value

    return either() and position == len(tokens)


def problems(dependencies: list[Dependency], allow: frozenset[str] = RUNTIME_ALLOWED) -> list[str]:
    """One line per dependency whose licence is unknown or not allowed."""
    out = []
    for dep in dependencies:
        if not dep.licence:
            out.append(f"{dep.name} {dep.version}: no licence found in its metadata "
                       f"(required by {dep.required_by})")
        elif not allowed(dep.licence, allow):
            out.append(f"{dep.name} {dep.version}: {dep.licence} is not allowed "
                       f"(required by {dep.required_by})")
    return out
