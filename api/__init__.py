"""api: the Flask application factory, its pages and HTTP endpoints, and the ``cat-engine`` CLI.

Thin handlers that validate input, call one service function and return; the schema of every table
is assembled in :mod:`api.models`; :mod:`api.demo` builds the demo database.

May import: everything above it (cat_engine, calibration, storage, item_bank, evidence, reports),
flask, flask-smorest, marshmallow, click, gunicorn. Nothing imports api.
"""
