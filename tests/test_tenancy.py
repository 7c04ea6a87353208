"""Tenant and agent lifecycle helpers refuse bad input with an InputError and write nothing;
a listing filter that could never match is a mistake, not an empty page."""

from __future__ import annotations

from typing import Any

import pytest

from maim_db import InputError, connect
from maim_db.control import tenancy
from maim_db.tables import Agent, Tenant
from tests.databases import TestDB, World


@pytest.mark.parametrize(("call", "message"), [
    (lambda db, w: tenancy.create_tenant(db, None), "tenant_name"),
    (lambda db, w: tenancy.create_tenant(db, "x", tenant_type="bogus"), "tenant_type"),
    (lambda db, w: tenancy.create_agent(db, None, tenant_id=w.tenant_id("T1")), "name"),
    (lambda db, w: tenancy.list_tenants(db, status="bogus"), "status must be one of"),
    (lambda db, w: tenancy.list_agents(db, status="gone"), "status must be one of"),
    (lambda db, w: tenancy.list_keys(db, status="revoked"), "status must be one of"),
    (lambda db, w: tenancy.list_agents(db, tenant_id="garbage"), "invalid tenant id"),
    (lambda db, w: tenancy.list_keys(db, agent_id="tenant_x"), "invalid agent id"),
    (lambda db, w: tenancy.list_tenants(db, owner_id="nobody"), "invalid user id"),
    (lambda db, w: tenancy.list_tenants(db, limit="5"), "limit must be an integer"),
    (lambda db, w: tenancy.list_tenants(db, offset=1.5), "offset must be an integer"),
    (lambda db, w: tenancy.list_tenants(db, offset=-1), "offset must be an integer"),
    (lambda db, w: tenancy.list_tenants(db, limit=0), "limit must be an integer"),
    (lambda db, w: tenancy.list_tenants(db, limit=10_000), "between 1 and"),
])
@pytest.mark.fresh_db  # compares whole tables
def test_bad_input_is_an_input_error_and_writes_nothing(db: TestDB, world: World, call: Any,
                                                        message: str) -> None:
    with pytest.raises(InputError, match=message), connect(db.dsn("admin"), admin=True) as adm:
        call(adm, world)
    with connect(db.dsn("admin"), admin=True) as adm:
        assert (len(adm.find(Tenant)), len(adm.find(Agent))) == (2, 3)


def test_valid_filters_still_list(db: TestDB, world: World) -> None:
    with connect(db.dsn("admin"), admin=True) as adm:
        page = tenancy.list_agents(adm, tenant_id=world.tenant_id("T1"), status="active",
                                   limit=1)
        assert (len(page.items), page.total) == (1, 2)
        assert tenancy.list_tenants(adm, status="suspended").total == 0
