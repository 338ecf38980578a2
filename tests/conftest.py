from __future__ import annotations

import pytest

from tests.factories import UserFactory


@pytest.fixture
def user(db):
    return UserFactory(credits=1000)


@pytest.fixture
def other_user(db):
    return UserFactory(credits=1000)


@pytest.fixture
def staff_user(db):
    return UserFactory(username="staff", is_staff=True, is_superuser=True)


@pytest.fixture(autouse=True)
def _media_root(settings, tmp_path):
    settings.MEDIA_ROOT = tmp_path / "media"
