"""A test session as a pure state machine: (bank, configuration, history, seed) -> next item.

The server keeps no session in memory. It stores :meth:`CATSession.to_json` (or just the history)
with the attempt and rebuilds the session on every request; rebuilding gives the same next item,
because every random choice is drawn from a generator seeded by ``(seed, position)``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from cat_engine.bank import ItemBank
from cat_engine.config import CATConfig
from cat_engine.engine import check_stop, choose_items, new_state, record_responses
from cat_engine.errors import BankExhaustedError, CATError, InvalidResponseError
from cat_engine.exposure import ExposureStats
from cat_engine.models import information, response_log_probability

JSON_VERSION = 1
_ROW = np.zeros(1, dtype=np.intp)


@dataclass(frozen=True)
class AnsweredItem:
    """One presented item and what came of it."""

    item_id: str
    position: int  # 1-based position in the test
    response: int
    scored: bool  # False for pretest items
    theta: float | None  # estimate after this response (None for pretest items)
    se: float | None
    information: float | None  # the item's information at the final theta


@dataclass(frozen=True)
class SessionResult:
    """The outcome so far: estimate, why it stopped, and what each item contributed."""

    theta: float
    se: float
    finished: bool
    stop_reason: str | None
    n_scored: int
    n_given: int
    items: tuple[AnsweredItem, ...] = field(default=())

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON of the result (for storage and explanations)."""
        total = sum(i.information or 0.0 for i in self.items if i.scored)
        return {
            "theta": self.theta,
            "se": self.se,
            "finished": self.finished,
            "stop_reason": self.stop_reason,
            "n_scored": self.n_scored,
            "n_given": self.n_given,
            "test_information": total,
            "items": [
                {
                    "item_id": i.item_id,
                    "position": i.position,
                    "response": i.response,
                    "scored": i.scored,
                    "theta": i.theta,
                    "se": i.se,
                    "information": i.information,
                    "information_share": (i.information / total) if i.scored and total else None,
                }
                for i in self.items
            ],
        }


class CATSession:
    """One test taker's adaptive test.

    Parameters
    ----------
    bank : ItemBank
    config : CATConfig or dict
        The engine configuration (a dict is built with :meth:`CATConfig.from_dict`).
    seed : int
        Seeds every random choice (randomesque, Sympson-Hetter draws, pretest order...).
    exposure_stats : ExposureStats, optional
        Exposure so far across test takers, for controls that react to it.
    """

    def __init__(
        self,
        bank: ItemBank,
        config: CATConfig | Mapping[str, Any],
        seed: int = 0,
        exposure_stats: ExposureStats | None = None,
    ) -> None:
        self.bank = bank
        self.config = config if isinstance(config, CATConfig) else CATConfig.from_dict(
            dict(config), bank
        )
        self.seed = int(seed)
        self.stats = exposure_stats or ExposureStats.empty(len(bank))
        rng = np.random.default_rng([self.seed, 0x5EED])
        self._state = new_state(self.config, bank, 1, rng)
        self._pretest_in_bank = [
            bank.index_of(i) for i in self.config.pretest.items if i in bank._index
        ]
        self._state.excluded[0, self._pretest_in_bank] = True
        self.config.exposure.start(self._state.withheld, rng, self.stats)
        self._history: list[AnsweredItem] = []
        self._pending: str | None = None
        self._finished = False
        self._stop_reason: str | None = None

    # -- the state machine ------------------------------------------------------------------

    @property
    def finished(self) -> bool:
        """Whether a stopping rule fired (or nothing is left to give)."""
        return self._finished

    @property
    def stop_reason(self) -> str | None:
        """Why the test stopped, or ``None`` while it goes on."""
        return self._stop_reason

    @property
    def history(self) -> tuple[AnsweredItem, ...]:
        """Every presented and answered item, in order."""
        return tuple(self._history)

    def next_item(self) -> str | None:
        """The item to present now (the same until it is answered), or ``None`` when finished."""
        if self._finished:
            return None
        if self._pending is None:
            self._pending = self._choose()
        return self._pending

    def answer(self, item_id: str, response: int) -> None:
        """Record the response to the presented item.

        Raises
        ------
        CATError
            The test is finished, or ``item_id`` is not the item presented.
        InvalidResponseError
            ``response`` is not one of the item's categories.
        """
        if self._finished:
            raise CATError(f"the test is finished ({self._stop_reason}); no more answers")
        expected = self.next_item()
        if item_id != expected:
            raise CATError(f"item {item_id!r} was not presented; the current item is {expected!r}")
        self._pending = None
        position = len(self._history) + 1
        if item_id in self.config.pretest.items:
            self._record_pretest(item_id, response, position)
            return
        j = self.bank.index_of(item_id)
        value = self._checked(item_id, j, response)
        record_responses(self.config, self._state, _ROW, np.array([j]), np.array([value]))
        self._history.append(
            AnsweredItem(
                item_id, position, value, True,
                float(self._state.theta[0]), float(self._state.se[0]), None,
            )
        )
        self._check_stop()

    def present(self, item_id: str) -> None:
        """Present ``item_id`` now instead of the engine's own choice.

        For answers given while the connection was down: the student saw an item of a
        fallback module (:meth:`fallback_module`), so that item is the one they answered. It
        must be an item this session could still present (not seen, not withdrawn), or a
        pretest item of the plan not given yet.

        Raises
        ------
        CATError
            The test is finished, or ``item_id`` could not be presented now.
        """
        if self._finished:
            raise CATError(f"the test is finished ({self._stop_reason}); no more answers")
        if item_id == self._pending:
            return
        if item_id in self.config.pretest.items:
            if any(h.item_id == item_id for h in self._history):
                raise CATError(f"pretest item {item_id!r} was already given")
        elif item_id not in self.bank._index:
            raise CATError(f"item {item_id!r} is not in this bank")
        else:
            j = self.bank.index_of(item_id)
            if self._state.seen[0, j] or self._state.excluded[0, j]:
                raise CATError(f"item {item_id!r} was already given or is withdrawn")
        self._pending = item_id

    def fallback_module(self, length: int) -> list[str]:
        """The items to give, in order, after the one presented now if the server cannot be
        reached: what the selector would choose next were the estimate to stay where it is.

        An adaptive test needs the server for each next item. This is the module a page keeps
        for a dropped connection: up to ``length`` items (never past the test's maximum
        length), chosen as the engine would at the current estimate, each marked given before
        the next is chosen. Content balancing sees them as given but not yet scored. The
        session itself is not changed. Empty when the test is finished.
        """
        if self._finished or length <= 0:
            return []
        copy = CATSession.from_json(self.bank, self.to_json(), config=self.config,
                                    exposure_stats=self.stats)
        state = copy._state
        room = self.config.stopping.max_items - len(self._history) - 1
        module: list[str] = []
        current = copy.next_item()
        given = [current]
        while len(module) < min(length, room):
            for item_id in given:  # given, as far as choosing goes; the estimate stays put
                if item_id in self.bank._index:
                    state.seen[0, self.bank.index_of(item_id)] = True
            state.n_given[0] = len(self._history) + 1 + len(module)
            copy._history = list(self._history) + [
                AnsweredItem(i, 0, 0, False, None, None, None) for i in [current, *module]]
            copy._pending = None
            try:
                item_id = copy._choose()
            except BankExhaustedError:
                break
            module.append(item_id)
            given = [item_id]
        return module

    def result(self) -> SessionResult:
        """Theta, SE, stopping reason, and each item's information at the final theta."""
        theta = float(self._state.theta[0])
        scored = [h for h in self._history if h.scored]
        info = {}
        if scored:
            idx = self.bank.indices_of([h.item_id for h in scored])
            values = information(self.bank, idx, np.full(idx.shape, theta))
            info = dict(zip((h.item_id for h in scored), values.tolist(), strict=True))
        items = tuple(
            AnsweredItem(h.item_id, h.position, h.response, h.scored, h.theta, h.se,
                         info.get(h.item_id) if h.scored else None)
            for h in self._history
        )
        return SessionResult(
            theta=theta,
            se=float(self._state.se[0]),
            finished=self._finished,
            stop_reason=self._stop_reason,
            n_scored=int(self._state.n_scored[0]),
            n_given=len(self._history),
            items=items,
        )

    def exposure_outcome(self) -> dict[str, Any]:
        """What this test adds to the exposure statistics (:meth:`ExposureStats.record`).

        ``given``: the scored items given; ``withheld``: items withheld as ineligible and never
        released; ``released``: whether the ineligible items had to be released.
        """
        state = self._state
        return {
            "given": [h.item_id for h in self._history if h.scored],
            "withheld": [self.bank.item_ids[j] for j in np.flatnonzero(state.withheld[0])],
            "released": bool(state.released[0]),
        }

    # -- persistence ---------------------------------------------------------------------------

    def to_json(self) -> dict[str, Any]:
        """Everything needed to rebuild this session exactly (plain JSON)."""
        withdrawn = np.flatnonzero(self._state.excluded[0])
        pretest = set(self._pretest_in_bank)
        return {
            "version": JSON_VERSION,
            "seed": self.seed,
            "config": self.config.settings,
            "history": [[h.item_id, h.response] for h in self._history],
            "estimates": [[h.theta, h.se] if h.scored else None for h in self._history],
            "withdrawn": [self.bank.item_ids[j] for j in withdrawn if j not in pretest],
            "withheld": [self.bank.item_ids[j] for j in np.flatnonzero(self._state.withheld[0])],
            "released": bool(self._state.released[0]),
            "pending": self._pending,
            "finished": self._finished,
            "stop_reason": self._stop_reason,
        }

    @classmethod
    def from_json(
        cls, bank: ItemBank, data: Mapping[str, Any], config: CATConfig | None = None,
        exposure_stats: ExposureStats | None = None,
    ) -> CATSession:
        """Rebuild a session stored with :meth:`to_json` (no replay of selections).

        ``config`` may pass an already built configuration (e.g. cached per test) to skip
        rebuilding it from ``data["config"]``.
        """
        if data.get("version") != JSON_VERSION:
            raise CATError(f"unsupported session version {data.get('version')!r}")
        session = cls(bank, config or data["config"], data["seed"], exposure_stats)
        # What was withheld at the start is stored: never draw it again from today's statistics.
        excluded = session._state.excluded[0]
        excluded[:] = False
        excluded[session._pretest_in_bank] = True
        if data.get("withdrawn"):
            excluded[bank.indices_of(data["withdrawn"])] = True
        withheld = session._state.withheld[0]
        withheld[:] = False
        if data.get("withheld"):
            withheld[bank.indices_of(data["withheld"])] = True
        session._state.released[0] = bool(data.get("released"))
        session._restore(data["history"], data.get("estimates"))
        session._pending = data.get("pending")
        session._finished = bool(data.get("finished"))
        session._stop_reason = data.get("stop_reason")
        return session

    @classmethod
    def from_history(
        cls,
        bank: ItemBank,
        config: CATConfig | Mapping[str, Any],
        history: Iterable[tuple[str, int]],
        seed: int = 0,
        exposure_stats: ExposureStats | None = None,
    ) -> CATSession:
        """Rebuild a session from its responses alone, replaying every step.

        Each answered item must be the one the engine presents at that step (as it is for any
        history this engine produced), so the rebuilt session is in exactly the same state.
        """
        session = cls(bank, config, seed, exposure_stats)
        for item_id, response in history:
            session.answer(item_id, int(response))
        return session

    # -- internals -------------------------------------------------------------------------------

    def _rng(self) -> np.random.Generator:
        return _LazyGenerator((self.seed, len(self._history)))

    def _choose(self) -> str:
        position = len(self._history) + 1
        plan = self.config.pretest
        if position in plan.positions:
            given = {h.item_id for h in self._history}
            left = [i for i in plan.items if i not in given]
            if left:
                return left[int(self._rng().integers(len(left)))]
        state = self._state
        if not state.available(_ROW).any():
            self._finish("bank_exhausted")
            raise BankExhaustedError("no item is left in the bank for this test")
        j = choose_items(self.config, state, _ROW, self._rng(), self.stats)
        return self.bank.item_ids[int(j[0])]

    def _checked(self, item_id: str, j: int | None, response) -> int:
        try:
            value = int(response)
        except (TypeError, ValueError):
            value = None
        if value is None or isinstance(response, bool) or value != response:
            raise InvalidResponseError(item_id, response, 2 if j is None else
                                       int(self.bank.n_categories[j]))
        if j is not None and not 0 <= value < self.bank.n_categories[j]:
            raise InvalidResponseError(item_id, response, int(self.bank.n_categories[j]))
        if value < 0:
            raise InvalidResponseError(item_id, response, 2)
        return value

    def _record_pretest(self, item_id: str, response, position: int) -> None:
        j = self.bank.index_of(item_id) if item_id in self.bank._index else None
        value = self._checked(item_id, j, response)
        self._history.append(AnsweredItem(item_id, position, value, False, None, None, None))
        if j is not None:
            self._state.seen[0, j] = True
        self._state.n_given[0] += 1

    def _check_stop(self) -> None:
        stop, reason = check_stop(self.config, self._state, _ROW)
        if stop[0]:
            self._finish(str(reason[0]))

    def _finish(self, reason: str) -> None:
        self._finished = True
        self._stop_reason = reason
        self._pending = None

    def _restore(self, history: list, estimates: list | None) -> None:
        """Apply a stored history in a few array operations (no selection replayed)."""
        state = self._state
        pretest = set(self.config.pretest.items)
        scored = [(i, int(r)) for i, r in history if i not in pretest]
        for position, (item_id, response) in enumerate(history, 1):
            if item_id in pretest:
                self._record_pretest(item_id, response, position)
            else:
                self._history.append(AnsweredItem(item_id, position, int(response), True,
                                                  None, None, None))
        if not scored:
            return
        idx = self.bank.indices_of([i for i, _ in scored])
        resp = np.array([r for _, r in scored], dtype=np.intp)
        bad = np.flatnonzero((resp < 0) | (resp >= self.bank.n_categories[idx]))
        if bad.size:
            j = int(idx[bad[0]])
            raise InvalidResponseError(scored[bad[0]][0], int(resp[bad[0]]),
                                       int(self.bank.n_categories[j]))
        n = idx.size
        if n > state.items.shape[1]:
            state.items = np.full((1, n), -1, dtype=np.intp)
            state.responses = np.full((1, n), -1, dtype=np.intp)
        state.items[0, :n], state.responses[0, :n] = idx, resp
        state.seen[0, idx] = True
        state.n_scored[0] = n
        state.n_given[0] = len(history)
        grid = self.config.grid
        contributions = response_log_probability(
            self.bank, idx[:, None], grid.points[None, :], resp[:, None]
        )
        # Accumulate in the same order as answer() does, so a rebuilt posterior is bit-exact.
        stacked = np.vstack([state.log_posterior[0], contributions])
        state.log_posterior[0] = np.cumsum(stacked, axis=0)[-1]
        stored = [e for e in estimates or () if e is not None]
        if len(stored) == n:  # the estimates made when each response arrived
            theta, se = stored[-1]
            previous = stored[-2][0] if n > 1 else self.config.prior_estimate[0]
        else:
            estimator = self.config.estimator
            theta, se = estimator.estimate(self.bank, state.items[:, :n],
                                           state.responses[:, :n], state.log_posterior, grid)
            before = state.log_posterior - contributions[-1]
            previous, _ = estimator.estimate(self.bank, state.items[:, : n - 1],
                                             state.responses[:, : n - 1], before, grid)
        state.theta[:], state.se[:], state.theta_previous[:] = theta, se, previous
        if estimates is not None:
            self._history = [
                AnsweredItem(h.item_id, h.position, h.response, h.scored,
                             *(est if est is not None else (None, None)), None)
                for h, est in zip(self._history, estimates, strict=True)
            ]


class _LazyGenerator:
    """A ``numpy.random.Generator`` seeded from ``entropy``, created only if a draw is made.

    Seeding costs tens of microseconds, more than a whole maximum-information step; most live
    steps draw nothing.
    """

    def __init__(self, entropy: tuple[int, ...]) -> None:
        self._entropy = entropy
        self._generator: np.random.Generator | None = None

    def __getattr__(self, name: str):
        if self._generator is None:
            self._generator = np.random.default_rng(list(self._entropy))
        return getattr(self._generator, name)
