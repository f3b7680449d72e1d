"""Annotators and who they are: accounts, tokens, project memberships and browser
login sessions (``Who``, the authenticated caller, is what the app passes around).
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from sqlalchemy import Engine, delete, func, select

from rlfoundry.errors import RLFoundryError
from rlfoundry.feedback.assign import release_open
from rlfoundry.feedback.db import (
    Annotator,
    Judgment,
    LoginSession,
    Membership,
    Project,
    annotator_for_token,
    hash_secret,
    new_secret,
    read_session,
    utcnow,
    write_session,
)


@dataclass(frozen=True)
class Who:
    """The authenticated caller: from a token, or from a browser login session."""

    id: int
    name: str
    is_admin: bool
    csrf: str | None = None  # set for cookie logins; Bearer requests carry no ambient credential
    is_reviewer: bool = False

    @property
    def may_review(self) -> bool:
        """Reviewers adjudicate in their projects, admins in every project."""
        return self.is_admin or self.is_reviewer


# ---------------------------------------------------------------- annotators and tokens


def add_annotator(
    engine: Engine,
    name: str,
    *,
    admin: bool = False,
    projects: list[str] | None = None,
    reviewer: bool = False,
) -> str:
    """Create an annotator and return its token (shown once; only its hash is stored).

    ``projects``: the projects they become a member of; ``None`` means every project
    that exists now (a project created later gets members with :func:`add_members`).
    ``reviewer``: may adjudicate items of their projects (the review queue).
    """
    name = name.strip()
    if not name or len(name) > 200:
        raise RLFoundryError("Annotator name must be 1-200 characters; pass a short name.")
    token = new_secret()
    with write_session(engine) as s:
        if s.scalar(select(Annotator.id).where(Annotator.name == name)) is not None:
            raise RLFoundryError(f"Annotator '{name}' already exists; choose another name.")
        if projects is None:
            project_ids = list(s.scalars(select(Project.id)))
        else:
            project_ids = list(dict.fromkeys(_project_id(s, p) for p in projects))
        ann = Annotator(
            name=name, token_hash=hash_secret(token), is_admin=admin, is_reviewer=reviewer
        )
        s.add(ann)
        s.flush()
        s.add_all(Membership(project_id=p, annotator_id=ann.id) for p in project_ids)
    return token


def _project_id(s: Any, name: str) -> int:
    pid = s.scalar(select(Project.id).where(Project.name == name))
    if pid is None:
        raise RLFoundryError(
            f"No project named '{name}'; create it first (`rlfoundry feedback create-project`)."
        )
    return pid


def _annotator(s: Any, name: str) -> Annotator:
    ann = s.scalar(select(Annotator).where(Annotator.name == name))
    if ann is None:
        raise RLFoundryError(
            f"No annotator named '{name}'; `rlfoundry feedback annotators` lists them."
        )
    return ann


def _end_sessions(s: Any, annotator_id: int) -> None:
    s.execute(delete(LoginSession).where(LoginSession.annotator_id == annotator_id))


def rotate_token(engine: Engine, name: str) -> str:
    """Give ``name`` a new token (returned, shown once); the old one and every browser
    session opened with it stop working at once."""
    token = new_secret()
    with write_session(engine) as s:
        ann = _annotator(s, name)
        ann.token_hash, ann.token_revoked_at = hash_secret(token), None
        _end_sessions(s, ann.id)
    return token


def revoke_token(engine: Engine, name: str) -> None:
    """Invalidate ``name``'s token and sessions; `rotate_token` issues a new one."""
    with write_session(engine) as s:
        ann = _annotator(s, name)
        # The hash of a secret nobody is told: no token matches it, the column stays unique.
        ann.token_hash, ann.token_revoked_at = hash_secret(new_secret()), utcnow()
        _end_sessions(s, ann.id)


def set_disabled(engine: Engine, name: str, disabled: bool) -> int:
    """Disable (or enable again) an annotator; returns the open assignments released.

    A disabled annotator's token and sessions are refused from the next request on;
    their judgments stay, and their open assignments go back to the pool.
    """
    with write_session(engine) as s:
        ann = _annotator(s, name)
        if not disabled:
            ann.disabled_at = None
            return 0
        ann.disabled_at = ann.disabled_at or utcnow()
        _end_sessions(s, ann.id)
        return release_open(s, ann.id)


def list_annotators(engine: Engine) -> list[dict[str, Any]]:
    """Name, role, status, projects and judgment count of every annotator."""
    with read_session(engine) as s:
        anns = list(s.scalars(select(Annotator).order_by(Annotator.id)))
        projects: dict[int, list[str]] = defaultdict(list)
        for aid, pname in s.execute(
            select(Membership.annotator_id, Project.name)
            .join(Project, Project.id == Membership.project_id)
            .order_by(Project.id)
        ):
            projects[aid].append(pname)
        done = dict(
            s.execute(
                select(Judgment.annotator_id, func.count(Judgment.id)).group_by(
                    Judgment.annotator_id
                )
            ).all()
        )
    return [
        {
            "name": a.name,
            "admin": a.is_admin,
            "reviewer": a.is_reviewer,
            "status": "disabled"
            if a.disabled_at
            else "token revoked"
            if a.token_revoked_at
            else "active",
            "projects": projects[a.id],
            "judgments": done.get(a.id, 0),
        }
        for a in anns
    ]


# ---------------------------------------------------------------- memberships


def add_members(engine: Engine, project: str, names: list[str]) -> list[str]:
    """Make annotators members of ``project``; returns those who were not already."""
    with write_session(engine) as s:
        pid = _project_id(s, project)
        ids = {n: _annotator(s, n).id for n in names}
        have = set(s.scalars(select(Membership.annotator_id).where(Membership.project_id == pid)))
        added = [n for n, i in ids.items() if i not in have]
        s.add_all(Membership(project_id=pid, annotator_id=ids[n]) for n in added)
    return added


def remove_members(engine: Engine, project: str, names: list[str]) -> list[str]:
    """End membership of ``project`` (their judgments stay, open assignments are released);
    returns those who were members."""
    with write_session(engine) as s:
        pid = _project_id(s, project)
        removed = []
        for n in names:
            aid = _annotator(s, n).id
            res = s.execute(
                delete(Membership).where(
                    Membership.project_id == pid, Membership.annotator_id == aid
                )
            )
            if res.rowcount:
                removed.append(n)
                release_open(s, aid, pid)
    return removed


def member_projects(engine: Engine, who: Who) -> list[Project]:
    """The projects ``who`` is a member of, in creation order."""
    with read_session(engine) as s:
        return list(
            s.scalars(
                select(Project)
                .join(Membership, Membership.project_id == Project.id)
                .where(Membership.annotator_id == who.id)
                .order_by(Project.id)
            )
        )


def member_project(engine: Engine, who: Who, project_id: int) -> Project | None:
    """Project ``project_id`` if ``who`` is a member of it (else ``None``, as if absent)."""
    with read_session(engine) as s:
        return s.scalar(
            select(Project)
            .join(Membership, Membership.project_id == Project.id)
            .where(Project.id == project_id, Membership.annotator_id == who.id)
        )


# ---------------------------------------------------------------- login sessions


SESSION_TTL = timedelta(hours=12)


def _who(ann: Annotator, csrf: str | None = None) -> Who:
    return Who(ann.id, ann.name, ann.is_admin, csrf, bool(ann.is_reviewer))


def who_for_token(engine: Engine, token: str) -> Who | None:
    with read_session(engine) as s:
        ann = annotator_for_token(s, token)
        return None if ann is None else _who(ann)


def login(engine: Engine, token: str) -> tuple[str, Who] | None:
    """Open a browser session for a valid token: returns (session key, who)."""
    with write_session(engine) as s:
        ann = annotator_for_token(s, token)
        if ann is None:
            return None
        key, csrf = new_secret(), new_secret()
        s.execute(delete(LoginSession).where(LoginSession.expires_at < utcnow()))
        s.add(
            LoginSession(
                key_hash=hash_secret(key),
                annotator_id=ann.id,
                csrf=csrf,
                expires_at=utcnow() + SESSION_TTL,
            )
        )
        return key, _who(ann, csrf)


def who_for_session(engine: Engine, key: str) -> Who | None:
    if not key or len(key) > 200:
        return None
    with read_session(engine) as s:
        row = s.execute(
            select(LoginSession, Annotator)
            .join(Annotator, Annotator.id == LoginSession.annotator_id)
            .where(
                LoginSession.key_hash == hash_secret(key),
                LoginSession.expires_at > utcnow(),
                Annotator.disabled_at.is_(None),
            )
        ).first()
    if row is None:
        return None
    sess, ann = row
    return _who(ann, sess.csrf)


def logout(engine: Engine, key: str) -> None:
    with write_session(engine) as s:
        s.execute(delete(LoginSession).where(LoginSession.key_hash == hash_secret(key)))
