"""An agent's whole configuration as one document (:mod:`.document`): read it, update it in
part, reset it to its defaults (``aread``/``aupdate``/``areset`` on an ``AsyncDatabase``); its
shape (:mod:`.shape`), its checks (:mod:`.validation`), and MaiBot's TOML files
(:mod:`.toml`)."""

from .document import aread, areset, aupdate, read, reset, update
from .shape import MASK, SECTIONS, TOP
from .toml import from_toml, to_toml

__all__ = ["MASK", "SECTIONS", "TOP", "aread", "areset", "aupdate", "from_toml", "read",
           "reset", "to_toml", "update"]
