from __future__ import annotations

import pytest


@pytest.fixture(autouse=True)
def _instant_simulated_fal(settings):
    """The simulated backend finishes at once (the gateway is made fresh per test)."""
    settings.FAL_SIMULATED_QUEUE_SECONDS = 0
    settings.FAL_SIMULATED_RUN_SECONDS = 0
