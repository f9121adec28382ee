"""The server entry points leave the startup heap out of the garbage collector's reach
(`dashboard_project.startup`): a full collection then walks what requests create, not the
~100k objects of settings, apps, models and views (60-85 ms pauses with them; bench/RESULTS.md)."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from tests.ops.tools import REPO

PROBE = """
import gc, importlib, sys
importlib.import_module(sys.argv[1])
frozen = gc.get_freeze_count()
resolver_loaded = "stats.views" in sys.modules
print(frozen, resolver_loaded)
"""


@pytest.mark.parametrize("module", ["dashboard_project.wsgi", "dashboard_project.asgi"])
def test_loading_the_application_freezes_what_it_built(module):
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "tests.settings"}
    out = subprocess.run(
        [sys.executable, "-c", PROBE, module], cwd=REPO, env=env, capture_output=True, text=True, timeout=120
    )
    assert out.returncode == 0, out.stderr[-2000:]
    frozen, views_loaded = out.stdout.split()
    assert int(frozen) > 20_000  # about 100k here; 0 without the freeze
    assert views_loaded == "True"  # the URLconf's views were imported before the freeze
