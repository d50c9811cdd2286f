"""Browser-test fixtures: a real `pacs portal` and one headless Chromium per module."""
from __future__ import annotations

import pytest

from tests.portal_support import chromium, portal_process


@pytest.fixture(scope="module")
def portal_url(cluster):
    with portal_process() as portal:
        yield portal.url


@pytest.fixture(scope="module")
def browser():
    with chromium() as driver:
        yield driver
