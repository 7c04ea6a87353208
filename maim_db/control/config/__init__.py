"""An agent's whole configuration as one document (:mod:`.document`): read it, update it in
part; its shape (:mod:`.shape`), its checks (:mod:`.validation`), and MaiBot's TOML files
(:mod:`.toml`)."""

from .document import read, update
from .shape import MASK, SECTIONS, TOP
from .toml import from_toml, to_toml

__all__ = ["MASK", "SECTIONS", "TOP", "from_toml", "read", "to_toml", "update"]
