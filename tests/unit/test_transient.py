"""Which failed transactions the group commit runs again (`tocsin.db.engine.transient`)."""

from __future__ import annotations

import sqlite3

import psycopg
from sqlalchemy.exc import IntegrityError, OperationalError

from tocsin.db.engine import transient


def test_deadlocks_serialization_failures_and_unique_violations_are_worth_a_retry() -> None:
    for error in (psycopg.errors.DeadlockDetected(), psycopg.errors.SerializationFailure()):
        assert transient(error)
        assert transient(OperationalError("COMMIT", {}, error))  # as SQLAlchemy wraps it
    assert transient(IntegrityError("INSERT", {}, psycopg.errors.UniqueViolation()))


def test_anything_else_is_not() -> None:
    assert not transient(psycopg.errors.NotNullViolation())
    assert not transient(psycopg.errors.UndefinedTable())
    assert not transient(IntegrityError("INSERT", {}, sqlite3.IntegrityError("UNIQUE constraint failed")))
    assert not transient(ValueError("bad"))
