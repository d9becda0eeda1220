"""Pure code: the pipeline spec, configuration, settings, the gate's statistics, typed outcomes, audit
records, integrity and io (atomic writes, path safety). Imports none of Ploomber, MLflow, DVC, nbval,
click or tornado (import-linter keeps it so)."""
