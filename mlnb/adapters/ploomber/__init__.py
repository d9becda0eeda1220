"""Ploomber: the spec rendered into a DAG, the executor that runs its tasks, the outdated check."""
