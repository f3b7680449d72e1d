"""Every registered algorithm and LLM stage has a documented Config that builds from its
defaults and that `rlfoundry list NAME` shows in full."""

from __future__ import annotations

import dataclasses

import pytest

from rlfoundry import registry
from rlfoundry.cli.main import main
from rlfoundry.runtime.config import build_config, field_docs


@pytest.mark.parametrize("entry", list(registry.REGISTRY.values()), ids=lambda e: e.name)
def test_config_is_documented_builds_and_is_listed(entry, capsys):
    module = entry.load()
    names = [f.name for f in dataclasses.fields(module.Config)]
    docs = field_docs(module.Config)
    assert [n for n in names if not docs.get(n)] == [], "fields without a docstring"
    build_config(module.Config)  # the defaults pass the type checks and validate()
    assert main(["list", entry.name]) == 0
    listing = capsys.readouterr().out
    assert [n for n in names if n not in listing] == [], "keys missing from `rlfoundry list`"
