"""What .ci/run relies on in the tests themselves."""

import pytest

pytest_plugins = ["pytester"]

SKIPS = """
import pytest
@pytest.mark.skip(reason='marker')
def test_a(): pass
def test_b(): pytest.skip('inside')
@pytest.fixture
def fx(): pytest.skip('fixture')
def test_c(fx): pass
def test_d(): pass
"""


@pytest.mark.parametrize("require_all", ["0", "1"])
def test_ci_turns_every_kind_of_skip_into_a_failure(pytester, monkeypatch, require_all):
    """.ci/run sets DQ_TEST_REQUIRE_ALL=1: a skip by marker, inside a test or inside a fixture
    then fails the run (conftest's pytest_runtest_makereport); without it, they are skips."""
    monkeypatch.setenv("DQ_TEST_REQUIRE_ALL", require_all)
    pytester.makepyfile(test_skips=SKIPS)
    result = pytester.runpytest_inprocess("-p", "dq_assets_tests.conftest", "-p", "no:cacheprovider",
                                          "-p", "no:xdist", "-o", "addopts=")
    if require_all == "0":
        result.assert_outcomes(passed=1, skipped=3)
    else:
        result.assert_outcomes(passed=1, failed=1, errors=2)
        assert result.ret == 1
        assert str(result.stdout).count("forbids skips") >= 3
