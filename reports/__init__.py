"""reports: mastery estimates that combine test and process evidence, with their explanations.

Each claim carries the evidence behind it and how much it weighed; teacher overrides are records of
their own; renderers (JSON, HTML, PDF with reportlab) only lay the data out. Holds today the chart
frames the pages draw as inline SVG (:mod:`reports.charts`); mastery estimates come with the issue
that builds them.

May import: cat_engine, item_bank, evidence, storage, reportlab and the standard library.
"""
