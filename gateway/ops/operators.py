"""Operators: API keys with a role, what each role may do, and the audit log of what they
did and which personal data they read.

    owner      operators, webhooks, the audit log; everything below
    approver   approve, start, pause, cancel payouts; KYC and compliance decisions;
               personal data
    initiator  upload disbursements, direct payouts, ask for retries
    viewer     read only (no personal data)

A key (``gwop_`` + 43 url-safe characters) is shown once, when made; only its SHA-256 is
kept. Keys expire (optionally) and can be revoked; an unknown, expired or revoked key is
refused with one message, whichever it was.
"""

from __future__ import annotations

import hashlib
import secrets
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import TYPE_CHECKING, Any

from gateway.errors import AuthenticationFailed, Forbidden, InvalidField, NotFound

if TYPE_CHECKING:
    from gateway.db.uow import UnitOfWork, UnitOfWorkFactory

KEY_PREFIX = "gwop_"
BAD_KEY = "the operator key is missing, unknown, expired or revoked"


class Role(StrEnum):
    OWNER = "owner"
    APPROVER = "approver"
    INITIATOR = "initiator"
    VIEWER = "viewer"


class Permission(StrEnum):
    READ = "read"
    READ_PERSONAL = "read_personal"
    INITIATE = "initiate"
    APPROVE = "approve"
    ADMINISTER = "administer"


GRANTS: dict[Role, frozenset[Permission]] = {
    Role.OWNER: frozenset(Permission),
    Role.APPROVER: frozenset({Permission.READ, Permission.READ_PERSONAL, Permission.APPROVE}),
    Role.INITIATOR: frozenset({Permission.READ, Permission.INITIATE}),
    Role.VIEWER: frozenset({Permission.READ}),
}


def key_hash(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


@dataclass(frozen=True)
class Operator:
    id: str
    name: str
    role: Role

    @property
    def actor(self) -> str:
        """How the operator appears in histories and the audit log."""
        return f"operator:{self.name}"

    def can(self, permission: Permission) -> bool:
        return permission in GRANTS[self.role]

    def require(self, permission: Permission) -> None:
        if not self.can(permission):
            raise Forbidden(f"the {self.role} role may not do this (needs {permission})")


class OperatorService:
    def __init__(
        self,
        uow: UnitOfWorkFactory,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ):
        self._uow = uow
        self._clock = clock

    async def create(
        self, name: str, role: str, *, created_by: str, expires_in: timedelta | None = None
    ) -> tuple[dict[str, Any], str]:
        """A new operator key: (its row, the key itself, shown only now)."""
        if not name or len(name) > 64 or not name.replace("-", "").replace("_", "").isalnum():
            raise InvalidField("name", "1 to 64 letters, digits, - or _")
        if role not in Role.__members__.values():
            raise InvalidField("role", f"must be one of {', '.join(r.value for r in Role)}")
        if expires_in is not None and expires_in <= timedelta(0):
            raise InvalidField("expires_in", "must be positive")
        key = KEY_PREFIX + secrets.token_urlsafe(32)
        now = self._clock()
        operator_id = str(uuid.uuid4())
        row: dict[str, Any] = {
            "id": operator_id,
            "name": name,
            "role": role,
            "key_hash": key_hash(key),
            "key_prefix": key[:12],
            "created_by": created_by[:128],
            "created_at": now,
            "expires_at": now + expires_in if expires_in is not None else None,
            "revoked_at": None,
            "last_used_at": None,
        }
        async with self._uow() as uow:
            await uow.operators.add(row)
            shown = {k: v for k, v in row.items() if k != "key_hash"}
            await self.record(
                uow, created_by, "operator.create", "operator", operator_id, None, shown
            )
            await uow.commit()
        return shown, key

    async def authenticate(self, key: str | None) -> Operator:
        """The operator holding this key; AuthenticationFailed for any key that is not a
        live one."""
        if not key or not key.startswith(KEY_PREFIX) or len(key) > 128:
            raise AuthenticationFailed(BAD_KEY)
        async with self._uow(read_only=True) as uow:
            row = await uow.operators.by_key_hash(key_hash(key))
        now = self._clock()
        if (
            row is None
            or row["revoked_at"] is not None
            or (row["expires_at"] is not None and row["expires_at"] <= now)
        ):
            raise AuthenticationFailed(BAD_KEY)
        return Operator(row["id"], row["name"], Role(row["role"]))

    async def listing(self, limit: int = 100, offset: int = 0) -> list[dict[str, Any]]:
        async with self._uow(read_only=True) as uow:
            return await uow.operators.recent(limit, offset)

    async def revoke(self, operator_id: str, *, by: str) -> dict[str, Any]:
        async with self._uow() as uow:
            before = await uow.operators.get(operator_id)
            if before is None:
                raise NotFound("operator not found")
            await uow.operators.revoke(operator_id, self._clock())
            after = await uow.operators.get(operator_id)
            await self.record(uow, by, "operator.revoke", "operator", operator_id, before, after)
            await uow.commit()
        assert after is not None
        return after

    async def audit_log(self, **filters: Any) -> list[dict[str, Any]]:
        """Audit entries, newest first (filters: actor, action, subject_type, subject_id,
        before_id, limit)."""
        async with self._uow(read_only=True) as uow:
            return await uow.audit.entries(**filters)

    async def audit(
        self,
        actor: str,
        action: str,
        subject_type: str,
        subject_id: str | None,
        before: Any = None,
        after: Any = None,
    ) -> None:
        """Record an operator's action (or read of personal data) in its own transaction."""
        async with self._uow() as uow:
            await self.record(uow, actor, action, subject_type, subject_id, before, after)
            await uow.commit()

    async def record(
        self,
        uow: UnitOfWork,
        actor: str,
        action: str,
        subject_type: str,
        subject_id: str | None,
        before: Any,
        after: Any,
    ) -> None:
        """Record an action in the caller's transaction: on record if and only if the
        change it describes is committed."""
        await uow.audit.record(
            self._clock(), actor, action, subject_type, subject_id, before, after
        )
