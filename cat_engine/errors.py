"""Domain errors of the engine. All are ``ValueError`` subclasses that name what is wrong."""

from __future__ import annotations


class CATError(ValueError):
    """Base class of the engine's errors about its input."""


class InvalidItemError(CATError):
    """An item's parameters are invalid: names the item and the field."""

    def __init__(self, item_id: str, field: str, problem: str) -> None:
        self.item_id = item_id
        self.field = field
        super().__init__(f"item {item_id!r}: {field} {problem}")


class UnknownItemError(CATError, KeyError):
    """An item id that is not in the bank."""

    def __init__(self, item_id: str) -> None:
        self.item_id = item_id
        super().__init__(f"unknown item {item_id!r}: not in the item bank")

    def __str__(self) -> str:  # KeyError would quote the message again
        return self.args[0]


class InvalidResponseError(CATError):
    """A response outside the item's categories."""

    def __init__(self, item_id: str, response: object, n_categories: int) -> None:
        self.item_id = item_id
        super().__init__(
            f"item {item_id!r}: response {response!r} is not one of its categories "
            f"0..{n_categories - 1}"
        )


class BankExhaustedError(CATError):
    """No item is left that may be administered."""


class ConfigError(CATError):
    """A test configuration that cannot be built: names the setting."""


def setting(spec: dict, key: str, default, path: str, kind: type = float):
    """``spec[key]`` as a finite ``kind`` (``float`` or ``int``); ``default`` when the key is absent
    (an explicit ``null`` is an error).

    Raises
    ------
    ConfigError
        Naming ``path.key`` when the value is not a finite number of that kind.
    """
    if key not in spec:
        return default
    value = spec[key]
    try:
        if isinstance(value, bool) or value is None:
            raise TypeError
        number = float(value)
        if number != number or number in (float("inf"), float("-inf")):
            raise ValueError
        if kind is int:
            if not number.is_integer():
                raise ValueError
            return int(number)
        return number
    except (TypeError, ValueError):
        what = "a whole number" if kind is int else "a finite number"
        raise ConfigError(f"{path}.{key} must be {what}, got {value!r}") from None
