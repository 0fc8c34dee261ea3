"""Delivery UI: the templates and static assets (CSS, small scripts) of the pages.

Served by :mod:`api`; holds no Python logic beyond naming its folders. Pages are server-rendered
HTML that works without JavaScript; no CDN, web font or tracker is loaded.

May import: nothing (templates only).
"""

from pathlib import Path

TEMPLATES = Path(__file__).resolve().parent / "templates"
STATIC = Path(__file__).resolve().parent / "static"
TRANSLATIONS = Path(__file__).resolve().parent / "translations"
