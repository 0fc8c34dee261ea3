"""cat_engine: the adaptive testing engine itself, in numpy and scipy alone.

IRT models (category probabilities, log-likelihood and Fisher information, vectorised over items and
thetas), ability estimators, item selection, exposure control, content constraints, stopping rules,
the pure test-session state machine, and the simulator that advances every simulee at once.

May import: numpy, scipy and the standard library. Nothing of this project, no database, no HTTP:
it takes and returns arrays and small frozen dataclasses, so it can be tested, benchmarked and
reused on its own.
"""

from cat_engine.bank import ItemBank, ItemParameters
from cat_engine.config import CATConfig
from cat_engine.errors import (
    BankExhaustedError,
    CATError,
    ConfigError,
    InvalidItemError,
    InvalidResponseError,
    UnknownItemError,
)
from cat_engine.session import CATSession, SessionResult
from cat_engine.simulation import SimulationResult, calibrate_sympson_hetter, simulate

__all__ = [
    "BankExhaustedError",
    "CATConfig",
    "CATError",
    "CATSession",
    "ConfigError",
    "InvalidItemError",
    "InvalidResponseError",
    "ItemBank",
    "ItemParameters",
    "SessionResult",
    "SimulationResult",
    "UnknownItemError",
    "calibrate_sympson_hetter",
    "simulate",
]
