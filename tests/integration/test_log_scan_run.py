"""The log scan fails a whole pytest run whose tests all pass when one of them logged personal
data: a separate pytest process with the plugin, on a test file that logs an e-mail address."""

from __future__ import annotations

import os
import subprocess
import sys

from tests.conftest import REPO

LEAKY_TEST = """
import logging

def test_that_passes_but_logs_a_customer_email():
    email = "ada@" + "example.com"
    logging.getLogger("gateway.sep12").warning("could not reach %s", email)

def test_that_logs_nothing_personal():
    logging.getLogger("gateway.sep12").warning("could not reach the customer")
"""


def run_pytest(tmp_path, body: str) -> subprocess.CompletedProcess[str]:
    (tmp_path / "test_leaky.py").write_text(body, encoding="utf-8")
    # No plugins from entry points: the plain run starts in a second, not four.
    env = {**os.environ, "PYTHONPATH": str(REPO), "PYTEST_DISABLE_PLUGIN_AUTOLOAD": "1"}
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "tests.log_scan", "-p", "no:cacheprovider"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_a_run_whose_tests_pass_fails_when_a_test_logged_personal_data(tmp_path):
    leaky = run_pytest(tmp_path, LEAKY_TEST)
    assert leaky.returncode == 1, leaky.stdout + leaky.stderr
    assert "2 passed" in leaky.stdout
    assert (
        "test_leaky.py::test_that_passes_but_logs_a_customer_email: gateway.sep12: "
        "SEP-9 email_address" in leaky.stdout
    )
    assert "test_that_logs_nothing_personal:" not in leaky.stdout
    assert "ada@example.com" not in leaky.stdout + leaky.stderr  # the report masks it
    assert "log scan: 1 hit(s) in 2 records: the run fails" in leaky.stdout
