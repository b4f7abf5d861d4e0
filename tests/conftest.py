"""Shared fixtures. Importing `app` needs settings; unit tests get harmless placeholders that reach nothing."""

import os
from collections import Counter

import pytest

pytest_plugins = ["tests.stack_fixtures"]

ORIGIN = "http://127.0.0.1:8000"
PLACEHOLDER_ENV = {
    "DATABASE_URL": "postgresql://nobody@127.0.0.1:9/none?sslmode=disable",
    "R2_ENDPOINT_URL": "http://127.0.0.1:9",
    "R2_ACCESS_KEY_ID": "placeholder",
    "R2_SECRET_ACCESS_KEY": "placeholder",
    "R2_BUCKET": "uploads",
    "ALLOWED_ORIGIN": ORIGIN,
    "DIGEST_SECRET": "placeholder digest secret, tests only (32+ chars)",
}
for _name, _value in PLACEHOLDER_ENV.items():
    os.environ.setdefault(_name, _value)
# Analytics stays off unless a test turns it on against its own capture server.
os.environ.pop("POSTHOG_API_KEY", None)


@pytest.fixture(scope="session")
def output_dir():
    """Where tests leave artefacts (screenshots, logs) for people to look at."""
    path = os.path.abspath(os.environ.get("TEST_OUTPUT_DIR", "test-output"))
    os.makedirs(path, exist_ok=True)
    return path



def _skipped(config) -> list:
    reporter = config.pluginmanager.get_plugin("terminalreporter")
    return reporter.stats.get("skipped", []) if reporter else []


def pytest_terminal_summary(terminalreporter, exitstatus, config):
    reasons = Counter(report.longrepr[2].removeprefix("Skipped: ") if isinstance(report.longrepr, tuple)
                      else str(report.longrepr) for report in _skipped(config))
    if reasons:
        terminalreporter.write_line("skipped: " + "; ".join(f"{count} test(s): {reason}"
                                                            for reason, count in reasons.most_common()),
                                    yellow=True, bold=True)


def pytest_sessionfinish(session, exitstatus):
    if os.environ.get("CI") and _skipped(session.config) and session.exitstatus == 0:
        # A skip in CI is a test nobody ran: the run proves less than it says.
        session.exitstatus = pytest.ExitCode.TESTS_FAILED
