# WARNING: generated from maim_db/control/plugins_async.py by tools/async_to_sync.py;
# do not edit: change the async source and run `python tools/async_to_sync.py`.

"""Plugin settings: a tenant-wide default row (agent_id NULL) and per-agent rows; the agent's
row wins. The precedence is resolved in SQL, in one statement.
"""

from __future__ import annotations

from typing import Any, Final

from ..connection import Database
from ..tables import PluginSetting

# In agent scope RLS already limits the rows to the tenant's defaults and the agent's own;
# DISTINCT ON keeps, per plugin, the agent's row when there is one.
_EFFECTIVE: Final = """
select distinct on (plugin_name) *
from plugin_settings
where tenant_id = maim.agent_tenant_id()
  and (agent_id is null or agent_id = maim.agent_id())
order by plugin_name, agent_id nulls last
"""


def effective(db: Database) -> list[PluginSetting]:
    """The settings that apply to the agent in scope, one per plugin (agent scope)."""
    return db.fetch(PluginSetting, _EFFECTIVE)


def configure(
    db: Database,
    *,
    tenant_id: str,
    plugin_name: str,
    enabled: bool,
    config: dict[str, Any] | None = None,
    agent_id: str | None = None,
) -> PluginSetting:
    """Set a tenant-wide (``agent_id=None``) or per-agent plugin setting (admin scope).
    ``config=None`` leaves a stored config as it is (a new setting starts with ``{}``)."""
    given = {} if config is None else {"config": config}
    return db.upsert(
        PluginSetting.from_input(
            tenant_id=tenant_id,
            agent_id=agent_id,
            plugin_name=plugin_name,
            enabled=enabled,
            **given,
        ),
        on=["tenant_id", "agent_id", "plugin_name"],
    )


# The generated module hands these out as well: one import for both flavours.
from .plugins_async import aconfigure as aconfigure
from .plugins_async import aeffective as aeffective
