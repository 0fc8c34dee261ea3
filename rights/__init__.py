"""Learners' rights, as services: consents and group variables, the privacy note, the export of
everything held about a student, erasure, retention and its purge, and reading the audit log.

It sits above ``reports`` (an export holds the student's decisions, appeals and latest report;
an erasure deletes them) and below ``api``, which only translates requests into these calls.
The records themselves (and the audit writer every package uses) live in ``storage.rights``.

May import: ``storage``, ``item_bank``, ``evidence``, ``reports`` and what they may import.
"""
