"""The shared-data helper: a missing data file fails the test that needs it, never skips it."""

from __future__ import annotations

from pathlib import Path

import pytest
from shared_data import SHARED_DATA, require


def test_a_missing_data_file_fails_naming_where_the_data_belongs(tmp_path: Path) -> None:
    with pytest.raises(pytest.fail.Exception, match="shared/data beside the checkout"):
        require(tmp_path / "nab-dev")


def test_the_data_is_found_beside_the_checkout_whatever_its_absolute_path() -> None:
    checkout = Path(__file__).resolve().parents[2]
    assert require(SHARED_DATA) == checkout.parent / "shared" / "data"
