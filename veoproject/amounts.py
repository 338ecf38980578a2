"""Whole numbers from callers (amounts of credits, counts): one check for every service.

`True` is an int to Python, but never a number of credits, hence the bool test.
"""

from __future__ import annotations

from typing import TypeGuard


def is_whole(value: object) -> TypeGuard[int]:
    """An int, and not a bool."""
    return isinstance(value, int) and not isinstance(value, bool)


def is_positive(value: object) -> TypeGuard[int]:
    """A whole number above zero (a grant, a voucher's worth, how many uses)."""
    return is_whole(value) and value > 0


def is_nonzero(value: object) -> TypeGuard[int]:
    """A whole number other than zero (a correction, either way)."""
    return is_whole(value) and value != 0
