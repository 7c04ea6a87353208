"""The control plane: tenants and agents (:mod:`.tenancy`), API keys (:mod:`.keys`), sealed
provider secrets and tokens (:mod:`.sealed`), agent liveness (:mod:`.activity`), plugin
settings (:mod:`.plugins`) and configuration documents (:mod:`.config`)."""
