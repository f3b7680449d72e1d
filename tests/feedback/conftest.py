"""Fixtures of the feedback tests: a SQLite file database and a test client."""

from __future__ import annotations

import pytest
from needs import need

need("fastapi", "feedback")

from fastapi.testclient import TestClient  # noqa: E402

from rlfoundry.feedback.app import create_app  # noqa: E402
from rlfoundry.feedback.db import make_engine  # noqa: E402


@pytest.fixture
def engine(tmp_path):
    eng = make_engine(f"sqlite:///{tmp_path / 'fb.db'}")
    yield eng
    eng.dispose()


@pytest.fixture
def client(engine):
    with TestClient(create_app(engine)) as c:
        yield c
