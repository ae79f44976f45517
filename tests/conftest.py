"""Shared fixtures: quiet Optuna logs, and storages for the multi-process tests."""

from __future__ import annotations

from collections.abc import Iterator
import os
import uuid

import optuna
import pytest

POSTGRES_URL = "postgresql+psycopg2://postgres@127.0.0.1:5432/test"


@pytest.fixture(autouse=True)
def _quiet_optuna() -> None:
    optuna.logging.set_verbosity(optuna.logging.WARNING)


def _postgres_reason() -> str | None:
    try:
        import sqlalchemy

        engine = sqlalchemy.create_engine(POSTGRES_URL)
        with engine.connect():
            pass
        engine.dispose()
    except Exception as error:  # noqa: BLE001 - any failure means "no server here"
        return f"no PostgreSQL server answers at {POSTGRES_URL}: {error}"
    return None


@pytest.fixture
def postgres_url() -> Iterator[str]:
    """The PostgreSQL URL; skips where no server answers, except under CI=true (must run)."""
    reason = _postgres_reason()
    if reason is not None:
        if os.environ.get("CI") == "true":
            pytest.fail(f"CI=true requires PostgreSQL: {reason}")
        pytest.skip(reason)
    yield POSTGRES_URL


@pytest.fixture
def study_name() -> str:
    return f"test-{uuid.uuid4().hex[:12]}"
