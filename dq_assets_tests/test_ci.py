"""What .ci/run relies on in the tests themselves."""

import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def test_ci_turns_every_kind_of_skip_into_a_failure(tmp_path):
    """.ci/run sets DQ_TEST_REQUIRE_ALL=1: a skip by marker, inside a test or inside a fixture
    then fails the run (conftest's pytest_runtest_makereport); without it, they are skips."""
    (tmp_path / "test_skips.py").write_text(
        "import pytest\n"
        "@pytest.mark.skip(reason='marker')\ndef test_a(): pass\n"
        "def test_b(): pytest.skip('inside')\n"
        "@pytest.fixture\ndef fx(): pytest.skip('fixture')\ndef test_c(fx): pass\n"
        "def test_d(): pass\n")

    def run(require_all: str) -> subprocess.CompletedProcess:
        env = {**os.environ, "DQ_TEST_REQUIRE_ALL": require_all, "PYTHONPATH": str(REPO)}
        return subprocess.run(
            [sys.executable, "-m", "pytest", "-q", "-n", "0", "-p", "no:cacheprovider",
             "-p", "dq_assets_tests.conftest", "-o", "addopts=", str(tmp_path / "test_skips.py")],
            cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)

    allowed, required = run("0"), run("1")
    assert allowed.returncode == 0 and "1 passed, 3 skipped" in allowed.stdout, allowed.stdout[-2000:]
    assert required.returncode == 1, required.stdout[-2000:]
    assert "1 failed, 1 passed, 2 errors" in required.stdout, required.stdout[-2000:]
    assert required.stdout.count("forbids skips") >= 3
