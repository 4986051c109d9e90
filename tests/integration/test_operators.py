"""Operator keys and the audit log on SQLite and PostgreSQL: keys are kept hashed, expire
and can be revoked; roles grant what they say; the audit log refuses UPDATE and DELETE."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import delete, select, update
from sqlalchemy.exc import DBAPIError

from gateway.db.tables import audit_log, operators
from gateway.db.uow import UnitOfWorkFactory
from gateway.errors import AuthenticationFailed, Forbidden, InvalidField, NotFound
from gateway.ops.operators import GRANTS, OperatorService, Permission, Role, key_hash

pytestmark = pytest.mark.asyncio


class Clock:
    def __init__(self) -> None:
        self.now = datetime(2026, 11, 21, 12, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def service(engine, clock) -> OperatorService:
    return OperatorService(UnitOfWorkFactory(engine), clock=clock)


async def test_a_key_is_shown_once_kept_hashed_and_expires(service, engine, clock):
    row, key = await service.create(
        "ana", "approver", created_by="cli", expires_in=timedelta(days=1)
    )
    assert key.startswith("gwop_") and len(key) > 40 and "key_hash" not in row
    async with engine.connect() as conn:
        stored = (await conn.execute(select(operators))).mappings().one()
    assert stored["key_hash"] == key_hash(key) and key not in str(dict(stored))
    found = await service.authenticate(key)
    assert (found.name, found.role, found.actor) == ("ana", Role.APPROVER, "operator:ana")
    clock.now += timedelta(days=1)
    with pytest.raises(AuthenticationFailed) as expired:
        await service.authenticate(key)
    for wrong in (None, "", "gwop_" + "x" * 43, "Bearer " + key, key[:-1]):
        with pytest.raises(AuthenticationFailed) as refused:
            await service.authenticate(wrong)
        assert refused.value.message == expired.value.message  # one message for every case


async def test_a_revoked_key_is_refused_and_both_changes_are_audited(service):
    row, key = await service.create("bea", "owner", created_by="cli")
    await service.authenticate(key)
    revoked = await service.revoke(row["id"], by="operator:root")
    assert revoked["revoked_at"] is not None
    with pytest.raises(AuthenticationFailed):
        await service.authenticate(key)
    with pytest.raises(NotFound):
        await service.revoke("nope", by="operator:root")
    entries = await service.audit_log()
    assert [(e["action"], e["actor"]) for e in entries] == [
        ("operator.revoke", "operator:root"),
        ("operator.create", "cli"),
    ]
    assert '"revoked_at": null' in entries[0]["before"] and key not in str(entries)


@pytest.mark.parametrize(
    ("name", "role"), [("", "viewer"), ("a b", "viewer"), ("x" * 65, "viewer"), ("ok", "root")]
)
async def test_bad_names_and_roles_are_refused(service, name, role):
    with pytest.raises(InvalidField):
        await service.create(name, role, created_by="cli")


async def test_roles_grant_what_they_say():
    assert GRANTS[Role.OWNER] == set(Permission)
    assert Permission.READ_PERSONAL not in GRANTS[Role.VIEWER] | GRANTS[Role.INITIATOR]
    assert Permission.APPROVE not in GRANTS[Role.INITIATOR]
    assert Permission.INITIATE not in GRANTS[Role.APPROVER]
    assert GRANTS[Role.VIEWER] == {Permission.READ}


async def test_a_role_without_the_permission_is_forbidden(service):
    _, key = await service.create("vic", "viewer", created_by="cli")
    viewer = await service.authenticate(key)
    viewer.require(Permission.READ)
    with pytest.raises(Forbidden, match="the viewer role may not do this"):
        viewer.require(Permission.APPROVE)


async def test_the_audit_log_is_append_only_in_the_database(service, engine):
    await service.audit("operator:ana", "customer.read", "customer", "c-1")
    for statement in (update(audit_log).values(actor="someone else"), delete(audit_log)):
        with pytest.raises(DBAPIError, match="append-only"):
            async with engine.begin() as conn:
                await conn.execute(statement)
    (entry,) = await service.audit_log()
    assert (entry["actor"], entry["subject_id"]) == ("operator:ana", "c-1")


async def test_binary_values_are_never_written_to_the_audit_log(service):
    sealed = b"\x01sealed SEP-9 value"
    await service.audit(
        "operator:ana", "customer.read", "customer", "c-1", None, {"file": sealed, "n": 1}
    )
    (entry,) = await service.audit_log()
    assert entry["after"] == '{"file": null, "n": 1}'
