"""An agent's data in and out, always in the agent's own scope: export, restore and erase
(:mod:`.archive`), and the import of a single-user MaiBot database (:mod:`.maibot`)."""
