"""The schema's lifecycle: migrations (:mod:`.migrate`), the isolation audit that gates every
deploy (:mod:`.audit`) and the reviewable text snapshot (:mod:`.snapshot`). The SQL itself
lives in ``migrations/`` and ``sql/`` beside the package (inside it, in a wheel)."""
