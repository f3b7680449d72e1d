"""Third-party packages a test needs: missing on a developer's machine, the test skips and
says which extra to install; missing in CI (``CI`` set), it fails, since ``./run.sh test``
installs every extra the README names (``.[dev,llm,feedback,bench,apps,beyond]``).

First-party modules (``rlfoundry.*``) are imported plainly, never through here: a broken
import of our own code is a failure everywhere."""

from __future__ import annotations

import importlib
import os
from types import ModuleType

import pytest

IN_CI = os.environ.get("CI", "").lower() not in ("", "0", "false")


def need(name: str, extra: str) -> ModuleType:
    """``import name``; outside CI a missing package skips (pip install -e '.[extra]')."""
    if IN_CI:
        return importlib.import_module(name)
    return pytest.importorskip(name, reason=f"needs {name}: pip install -e '.[{extra}]'")
