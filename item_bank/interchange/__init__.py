"""Import and export of items (content and IRT parameters) as CSV and QTI, with no database.

Everything here takes and returns plain records (:class:`ItemRecord`, :class:`ParameterRecord`),
strings and bytes; storing them is the caller's job (:mod:`item_bank.importing`). A file either
parses completely or raises one :class:`InterchangeError` that lists every problem found (up to
50), each naming the CSV line and column, or the XML element, its source line and the file inside
a package.

One module a format, each with its own rules in its docstring:

- :mod:`~item_bank.interchange.records`: the records, the error, the validation every format
  shares, and the parameters' metric;
- :mod:`~item_bank.interchange.csv_format`: items and parameters as CSV, formula defusing;
- :mod:`~item_bank.interchange.qti`: single-choice items as QTI 3.0 and 2.1, tables in stems;
- :mod:`~item_bank.interchange.usage_data`: IRT parameters as QTI Usage Data;
- :mod:`~item_bank.interchange.qti_package`: QTI content packages (zip) and :func:`read_qti`,
  with the package size limits;
- :mod:`~item_bank.interchange.xml_io`: parsing untrusted XML, writing exact text.

The names below are the public interface; import them from here.
"""

from item_bank.interchange.csv_format import (
    FORMULA_TRIGGERS,
    defuse_cell,
    read_items_csv,
    restore_cell,
    write_items_csv,
    write_parameters_csv,
)
from item_bank.interchange.qti import QTI3_NS, QTI21_NS, QTI22_NS, TOOL_NAME, write_qti_item
from item_bank.interchange.qti_package import CAT_NS, CP3_NS, read_qti, write_qti_package
from item_bank.interchange.records import (
    MAX_PROBLEMS,
    STATUSES,
    InterchangeError,
    ItemRecord,
    ParameterRecord,
    TranslationRecord,
    parameter_problems,
    record_problems,
)
from item_bank.interchange.usage_data import USAGE3_NS, USAGE_CONTEXT, USAGE_GLOSSARY

__all__ = [
    "CAT_NS",
    "CP3_NS",
    "FORMULA_TRIGGERS",
    "MAX_PROBLEMS",
    "QTI3_NS",
    "QTI21_NS",
    "QTI22_NS",
    "STATUSES",
    "TOOL_NAME",
    "USAGE3_NS",
    "USAGE_CONTEXT",
    "USAGE_GLOSSARY",
    "InterchangeError",
    "ItemRecord",
    "ParameterRecord",
    "TranslationRecord",
    "defuse_cell",
    "parameter_problems",
    "read_items_csv",
    "read_qti",
    "record_problems",
    "restore_cell",
    "write_items_csv",
    "write_parameters_csv",
    "write_qti_item",
    "write_qti_package",
]
