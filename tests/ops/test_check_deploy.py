"""`manage.py check --deploy` under the production settings reports no issue: with DJANGO_DEBUG=0
alone (the TLS-proxy settings follow from it) and with what ops/serve.py imposes."""

from __future__ import annotations

import subprocess
import sys

import pytest

from ops.serve import PRODUCTION, PRODUCTION_DEFAULTS
from tests.topology import REPO, base_env

PRODUCTION_SECRETS = {"DJANGO_SECRET_KEY": "k" * 20 + "-check-deploy-not-a-real-secret-" + "x" * 20}


def check_deploy(tmp_path, **overrides: str) -> subprocess.CompletedProcess[str]:
    env = base_env(tmp_path / "unused.sqlite3") | PRODUCTION_SECRETS | overrides
    return subprocess.run(
        [sys.executable, "manage.py", "check", "--deploy", "--fail-level", "WARNING"],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=120,
    )  # fmt: skip


@pytest.mark.parametrize(
    "production",
    [{"DJANGO_DEBUG": "0"}, {**PRODUCTION, **PRODUCTION_DEFAULTS, "METRICS_TOKEN": "t"}],
    ids=["debug-off", "make-serve"],
)
def test_check_deploy_reports_no_issue_under_the_production_settings(tmp_path, production):
    done = check_deploy(tmp_path, **production)

    assert done.returncode == 0, done.stdout + done.stderr
    assert "System check identified no issues (0 silenced)." in done.stdout


def test_check_deploy_warns_of_each_setting_the_proxy_switch_turns_on(tmp_path):
    # Off (plain HTTP, as the benchmarks run), the four warnings Django gives are the switch's.
    done = check_deploy(tmp_path, DJANGO_DEBUG="0", DJANGO_BEHIND_TLS_PROXY="0")

    assert done.returncode != 0
    for warning in ("security.W004", "security.W008", "security.W012", "security.W016"):
        assert warning in done.stderr
