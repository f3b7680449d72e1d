"""Tables of the preference-collection app (SQLAlchemy 2) and the engine that holds them.

Duplicates are made impossible by the schema, not by application code: one assignment
per (item, annotator), one judgment per assignment and per (item, annotator). Tokens and
session keys are stored only as SHA-256 hashes.

Older databases are brought up to date when they are opened (:func:`migrate`).

Labels are stored in *response-index* terms (the order of ``responses`` in the import
file), never in the left/right order an annotator saw; :mod:`rlfoundry.feedback.labels`
converts between the two.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import secrets
import threading
from collections.abc import Iterator
from contextlib import contextmanager, nullcontext
from datetime import datetime, timezone
from typing import Any

from sqlalchemy import (
    Boolean,
    Connection,
    DateTime,
    Engine,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
    create_engine,
    event,
    insert,
    inspect,
    literal,
    select,
    text,
    true,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column, relationship
from sqlalchemy.pool import StaticPool

from rlfoundry.errors import RLFoundryError

DEFAULT_DB = "sqlite:///feedback.db"
KINDS = ("compare", "rank", "rate", "rewrite")


def utcnow() -> datetime:
    return datetime.now(timezone.utc).replace(tzinfo=None)


def hash_secret(secret: str) -> str:
    """SHA-256 hex digest: tokens are high-entropy, so a salt-free fast hash is enough."""
    return hashlib.sha256(secret.encode()).hexdigest()


def new_secret() -> str:
    return secrets.token_urlsafe(32)


class Base(DeclarativeBase):
    pass


class Project(Base):
    __tablename__ = "projects"
    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(200), unique=True)
    kind: Mapped[str] = mapped_column(String(16))  # one of KINDS
    overlap: Mapped[int] = mapped_column(Integer, default=2)  # annotators per regular item
    gold_every: Mapped[int] = mapped_column(Integer, default=10)  # 0: never mix gold in
    guidelines: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    items: Mapped[list[Item]] = relationship(back_populates="project")


class Item(Base):
    __tablename__ = "items"
    __table_args__ = (
        UniqueConstraint("project_id", "external_id"),
        # Serves "open items, closest to complete first" straight from the index
        # (ORDER BY n_assigned DESC, id with no sort step).
        Index("ix_items_open", "project_id", "is_gold", text("n_assigned DESC"), "id"),
    )
    id: Mapped[int] = mapped_column(primary_key=True)
    project_id: Mapped[int] = mapped_column(ForeignKey("projects.id"), index=True)
    external_id: Mapped[str] = mapped_column(String(200))
    prompt: Mapped[str] = mapped_column(Text)
    n_responses: Mapped[int] = mapped_column(Integer)
    is_gold: Mapped[bool] = mapped_column(Boolean, default=False)
    gold_json: Mapped[str | None] = mapped_column(Text, nullable=True)
    # A multi-turn item: the conversation so far as [{role, content}, ...] JSON (``prompt``
    # then holds a plain-text rendering of it); the responses are the next assistant turn.
    messages_json: Mapped[str | None] = mapped_column(Text, nullable=True)
    # Assignments held on the item (done or open). Kept equal to the count of its rows in
    # `assignments` by assign.py, inside the same write transactions, so that finding
    # open items is an index range scan instead of a GROUP BY over every assignment.
    n_assigned: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    project: Mapped[Project] = relationship(back_populates="items")
    responses: Mapped[list[Response]] = relationship(order_by="Response.idx")

    @property
    def gold(self) -> Any:
        return None if self.gold_json is None else json.loads(self.gold_json)

    @property
    def messages(self) -> list[dict[str, str]] | None:
        return None if self.messages_json is None else json.loads(self.messages_json)


class Response(Base):
    __tablename__ = "responses"
    __table_args__ = (UniqueConstraint("item_id", "idx"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    item_id: Mapped[int] = mapped_column(ForeignKey("items.id"), index=True)
    idx: Mapped[int] = mapped_column(Integer)
    text: Mapped[str] = mapped_column(Text)
    model: Mapped[str | None] = mapped_column(String(200), nullable=True)  # never shown


class Annotator(Base):
    __tablename__ = "annotators"
    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(200), unique=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    is_admin: Mapped[bool] = mapped_column(Boolean, default=False)
    # May adjudicate (the review queue) in the projects they are a member of; admins may
    # review every project.
    is_reviewer: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    # Set by `feedback disable-annotator`: no token or session of theirs is accepted.
    disabled_at: Mapped[datetime | None] = mapped_column(DateTime, nullable=True)
    # Set by `feedback revoke-token` (token_hash then matches no token anyone holds),
    # cleared by `rotate-token`; kept so that `feedback annotators` can say why.
    token_revoked_at: Mapped[datetime | None] = mapped_column(DateTime, nullable=True)


class Membership(Base):
    """An annotator may see and be given work from a project only as its member."""

    __tablename__ = "memberships"
    __table_args__ = (UniqueConstraint("project_id", "annotator_id"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    project_id: Mapped[int] = mapped_column(ForeignKey("projects.id"))
    annotator_id: Mapped[int] = mapped_column(ForeignKey("annotators.id"), index=True)
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)


class LoginSession(Base):
    """A browser login: the cookie carries the key, the table its hash and the CSRF token."""

    __tablename__ = "sessions"
    id: Mapped[int] = mapped_column(primary_key=True)
    key_hash: Mapped[str] = mapped_column(String(64), unique=True)
    annotator_id: Mapped[int] = mapped_column(ForeignKey("annotators.id"), index=True)
    csrf: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(DateTime)


class Assignment(Base):
    __tablename__ = "assignments"
    __table_args__ = (
        UniqueConstraint("item_id", "annotator_id"),
        Index("ix_assignments_mine", "annotator_id", "project_id"),
        # At most one open assignment per annotator and project, so two concurrent
        # "next" requests of one annotator cannot both open one. Partial indexes exist
        # on SQLite and PostgreSQL only; elsewhere the race just leaves a second open
        # assignment, which the lease reclaims.
        Index(
            "uq_assignments_one_open",
            "project_id",
            "annotator_id",
            unique=True,
            sqlite_where=text("done_at IS NULL"),
            postgresql_where=text("done_at IS NULL"),
        ).ddl_if(dialect=("sqlite", "postgresql")),
    )
    id: Mapped[int] = mapped_column(primary_key=True)
    project_id: Mapped[int] = mapped_column(ForeignKey("projects.id"), index=True)
    item_id: Mapped[int] = mapped_column(ForeignKey("items.id"), index=True)
    annotator_id: Mapped[int] = mapped_column(ForeignKey("annotators.id"), index=True)
    order_json: Mapped[str] = mapped_column(Text)  # response idx shown as A, B, ...
    assigned_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    done_at: Mapped[datetime | None] = mapped_column(DateTime, nullable=True)
    item: Mapped[Item] = relationship()

    @property
    def order(self) -> list[int]:
        return json.loads(self.order_json)


class Judgment(Base):
    __tablename__ = "judgments"
    __table_args__ = (
        UniqueConstraint("assignment_id"),
        UniqueConstraint("item_id", "annotator_id"),
    )
    id: Mapped[int] = mapped_column(primary_key=True)
    assignment_id: Mapped[int] = mapped_column(ForeignKey("assignments.id"))
    project_id: Mapped[int] = mapped_column(ForeignKey("projects.id"), index=True)
    item_id: Mapped[int] = mapped_column(ForeignKey("items.id"), index=True)
    annotator_id: Mapped[int] = mapped_column(ForeignKey("annotators.id"), index=True)
    label_json: Mapped[str] = mapped_column(Text)  # in response-index terms
    reason: Mapped[str] = mapped_column(Text, default="")
    active_ms: Mapped[int | None] = mapped_column(Integer, nullable=True)  # visible time, client
    wall_ms: Mapped[int] = mapped_column(Integer)  # assigned -> submitted, server clock
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)

    @property
    def label(self) -> Any:
        return json.loads(self.label_json)


class JudgmentRevision(Base):
    """Every version of every judgment, appended on submit and on each edit; the
    ``judgments`` row holds the latest, which is what statistics and exports read."""

    __tablename__ = "judgment_revisions"
    id: Mapped[int] = mapped_column(primary_key=True)
    judgment_id: Mapped[int] = mapped_column(ForeignKey("judgments.id"), index=True)
    annotator_id: Mapped[int] = mapped_column(ForeignKey("annotators.id"))
    label_json: Mapped[str] = mapped_column(Text)  # in response-index terms
    reason: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)


MARKS = ("skip", "flag")


class Mark(Base):
    """An annotator skipped or flagged an item (with a reason). Either way the item
    leaves that annotator's queue and its slot goes back to the pool; a flag also puts
    the item in the review queue until a reviewer decides it."""

    __tablename__ = "marks"
    __table_args__ = (UniqueConstraint("item_id", "annotator_id"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    project_id: Mapped[int] = mapped_column(ForeignKey("projects.id"), index=True)
    item_id: Mapped[int] = mapped_column(ForeignKey("items.id"), index=True)
    annotator_id: Mapped[int] = mapped_column(ForeignKey("annotators.id"), index=True)
    kind: Mapped[str] = mapped_column(String(8))  # one of MARKS
    reason: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)


class Review(Base):
    """A reviewer's decision on an item, stored beside (never instead of) the votes.

    Append-only: a new decision is a new row and the latest one wins. ``label_json`` is
    a label in response-index terms (the item's final answer) or ``null`` with
    ``discard`` set (the item is left out of every export).
    """

    __tablename__ = "reviews"
    id: Mapped[int] = mapped_column(primary_key=True)
    project_id: Mapped[int] = mapped_column(ForeignKey("projects.id"), index=True)
    item_id: Mapped[int] = mapped_column(ForeignKey("items.id"), index=True)
    reviewer_id: Mapped[int] = mapped_column(ForeignKey("annotators.id"))
    label_json: Mapped[str | None] = mapped_column(Text, nullable=True)
    discard: Mapped[bool] = mapped_column(Boolean, default=False)
    note: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)

    @property
    def label(self) -> Any:
        return None if self.label_json is None else json.loads(self.label_json)


def normalize_url(url: str | None) -> str:
    """``None`` -> $RLFOUNDRY_FEEDBACK_DB or ``sqlite:///feedback.db``; a bare path -> SQLite."""
    url = url or os.environ.get("RLFOUNDRY_FEEDBACK_DB") or DEFAULT_DB
    return url if "://" in url else f"sqlite:///{url}"


def make_engine(url: str | None = None, *, create: bool = True) -> Engine:
    """An engine whose ``immediate`` variant (see :func:`write_session`) serializes writers.

    SQLite's default deferred BEGIN lets two writers both read "2 of 3 slots taken" and
    both insert; ``BEGIN IMMEDIATE`` takes the write lock before the first read, so
    assignment decisions are serialized. pysqlite's own transaction handling is turned
    off so that the BEGIN we emit is the one that runs (SQLAlchemy docs, "Serializable
    isolation / Savepoints / Transactional DDL" for pysqlite).
    """
    url = normalize_url(url)
    kwargs: dict[str, Any] = {}
    sqlite = url.startswith("sqlite")
    if sqlite:
        kwargs["connect_args"] = {"check_same_thread": False, "timeout": 30}
        if url in ("sqlite://", "sqlite:///:memory:"):
            kwargs["poolclass"] = StaticPool
        else:
            kwargs.update(pool_size=8, max_overflow=24)
    try:
        engine = create_engine(url, **kwargs)
    except Exception as err:  # bad URL or missing driver (e.g. psycopg for PostgreSQL)
        raise RLFoundryError(
            f"Cannot open feedback database '{url}' ({err}); pass a valid SQLAlchemy URL with "
            "--db, e.g. sqlite:///feedback.db or postgresql+psycopg://user@host/db."
        ) from None
    if sqlite:

        @event.listens_for(engine, "connect")
        def _connect(dbapi_conn: Any, _record: Any) -> None:
            dbapi_conn.isolation_level = None
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA foreign_keys=ON")
            cur.execute("PRAGMA busy_timeout=30000")
            if kwargs.get("poolclass") is not StaticPool:
                cur.execute("PRAGMA journal_mode=WAL")
                cur.execute("PRAGMA synchronous=NORMAL")
            cur.close()

        @event.listens_for(engine, "begin")
        def _begin(conn: Any) -> None:
            immediate = conn.get_execution_options().get("rlf_immediate", False)
            conn.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")

    if create:
        try:
            with engine.execution_options(rlf_immediate=True).begin() as conn:
                migrate(conn)
        except Exception as err:  # unreachable server, bad credentials, unwritable file
            raise RLFoundryError(
                f"Cannot use feedback database '{engine.url!r}' ({type(err).__name__}: "
                f"{str(err).splitlines()[0][:200]}); check --db and that the database is reachable."
            ) from None
    return engine


def migrate(conn: Connection) -> None:
    """Create missing tables and bring a database made by an earlier version up to date.

    Idempotent, and run in one write transaction so two processes opening the same old
    database do not both alter it. Changes so far:

    * ``annotators.disabled_at``, ``annotators.token_revoked_at``,
      ``annotators.is_reviewer`` and ``items.messages_json`` (added columns);
    * ``judgment_revisions`` (a new table): each existing judgment becomes its first
      revision; ``marks`` and ``reviews`` (new, start empty);
    * ``memberships`` (a new table). Before it, every annotator saw every project, so
      a database that predates it gets every existing annotator as a member of every
      existing project: nobody loses work they had, later projects start empty.
    """
    before = set(inspect(conn).get_table_names())
    Base.metadata.create_all(conn)
    if "annotators" not in before:
        return  # a new database: create_all made everything
    added = (
        ("annotators", "disabled_at", DateTime()),
        ("annotators", "token_revoked_at", DateTime()),
        ("annotators", "is_reviewer", Boolean()),
        ("items", "messages_json", Text()),
    )
    for table, name, type_ in added:
        if name not in {c["name"] for c in inspect(conn).get_columns(table)}:
            kind = type_.compile(dialect=conn.dialect)
            default = " DEFAULT FALSE" if isinstance(type_, Boolean) else ""
            conn.execute(text(f"ALTER TABLE {table} ADD COLUMN {name} {kind}{default}"))
    if "judgment_revisions" not in before:  # every judgment so far is its first version
        conn.execute(
            insert(JudgmentRevision).from_select(
                ["judgment_id", "annotator_id", "label_json", "reason", "created_at"],
                select(
                    Judgment.id,
                    Judgment.annotator_id,
                    Judgment.label_json,
                    Judgment.reason,
                    Judgment.updated_at,
                ),
            )
        )
    if "memberships" not in before:
        conn.execute(
            insert(Membership).from_select(
                ["project_id", "annotator_id", "created_at"],
                select(Project.id, Annotator.id, literal(utcnow(), DateTime)).join(
                    Annotator, true()
                ),
            )
        )


@contextmanager
def read_session(engine: Engine) -> Iterator[Session]:
    with Session(engine, expire_on_commit=False) as s, s.begin():
        yield s


_WRITE_LOCKS: dict[str, threading.Lock] = {}
_LOCKS_GUARD = threading.Lock()


def _process_write_lock(engine: Engine) -> threading.Lock | None:
    """One lock per SQLite database per process.

    SQLite admits one writer at a time anyway; waiting on a Python lock wakes the next
    writer as soon as the previous one commits, whereas SQLite's busy handler polls
    with sleeps of up to 100 ms, which under 50 concurrent writers cost most of the
    throughput. ``BEGIN IMMEDIATE`` still guards against other processes.
    """
    if engine.dialect.name != "sqlite":
        return None
    key = str(engine.url)
    with _LOCKS_GUARD:
        return _WRITE_LOCKS.setdefault(key, threading.Lock())


@contextmanager
def write_session(engine: Engine) -> Iterator[Session]:
    """A transaction that holds the database write lock from its first statement.

    On SQLite this is ``BEGIN IMMEDIATE``; elsewhere callers that decide on counts also
    lock the project row (``SELECT ... FOR UPDATE``, see ``assign.next_assignment``).
    """
    bind = engine.execution_options(rlf_immediate=True)
    lock = _process_write_lock(engine)
    with (
        lock if lock is not None else nullcontext(),
        Session(bind, expire_on_commit=False) as s,
        s.begin(),
    ):
        yield s


def annotator_for_token(s: Session, token: str) -> Annotator | None:
    """The annotator holding ``token``, compared in constant time."""
    if not token or len(token) > 200:
        return None
    digest = hash_secret(token)
    ann = s.scalar(select(Annotator).where(Annotator.token_hash == digest))
    if ann is None or not hmac.compare_digest(ann.token_hash, digest):
        return None
    return None if ann.disabled_at is not None else ann
