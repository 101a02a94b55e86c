"""Stash keys shared by the plugin's modules."""

from __future__ import annotations

import pytest

from ..suite import Suite
from ..verdict import Verdict

SUITE_KEY = pytest.StashKey[Suite]()
VERDICT_KEY = pytest.StashKey[Verdict]()
