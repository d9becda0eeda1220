"""MLflow: the only package of mlnb that imports it (every import inside a function, so that importing
mlnb stays fast). :mod:`.tracking` (the store, build and task runs), :mod:`.runs` (the client, run lookup,
logging, artifact downloads), :mod:`.registry` (MLflow's errors as mlnb's, aliases, version tags),
:mod:`.models` (``MLmodel`` files, logging a model) and :mod:`.safeload` (loading a model without
running its code)."""
