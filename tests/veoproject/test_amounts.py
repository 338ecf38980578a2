"""Whole numbers of credits: one check, and True is not one."""

from __future__ import annotations

import pytest

from veoproject.amounts import is_nonzero, is_positive, is_whole


@pytest.mark.parametrize("value", [True, False, 1.0, "1", None])
def test_bools_floats_and_strings_are_not_whole_numbers(value):
    assert not is_whole(value)
    assert not is_positive(value)
    assert not is_nonzero(value)


def test_positive_and_nonzero():
    assert is_positive(1) and not is_positive(0) and not is_positive(-1)
    assert is_nonzero(-1) and is_nonzero(1) and not is_nonzero(0)
