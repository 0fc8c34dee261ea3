"""item_bank: items, their content and skill tags, parameter sets with provenance, and tests.

Items move through draft -> pretest -> operational -> retired; each calibration adds a parameter set
and one is active per item. A named test is a set of items plus an engine configuration. Also the
demo item generator (:mod:`item_bank.demo_items`), and later CSV/QTI import and export and exposure
counters.

May import: storage, cat_engine, numpy, sqlalchemy and the standard library.
"""
