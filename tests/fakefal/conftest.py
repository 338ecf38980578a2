"""Fixtures for the fake's own tests (tests/conftest.py may import the same ones)."""

from tests.fakefal.fixtures import fake_fal, fake_fal_factory, fake_fal_process  # noqa: F401
