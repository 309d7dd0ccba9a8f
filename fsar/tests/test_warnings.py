"""The test run's warning policy (pyproject.toml): a warning that points at the
project's own code fails the test; a third party's stays a warning."""

import warnings

import pytest


def test_a_warning_from_the_projects_code_fails_the_test():
    with pytest.raises(DeprecationWarning, match="old way"):
        warnings.warn("the old way", DeprecationWarning, stacklevel=1)


def test_a_third_party_deprecation_stays_a_warning():
    with warnings.catch_warnings(record=True) as seen:
        warnings.warn_explicit("their old way", DeprecationWarning, "somelib/core.py", 1, module="somelib.core")
    assert [str(w.message) for w in seen] == ["their old way"]
