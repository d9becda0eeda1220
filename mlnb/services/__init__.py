"""Use cases: build, status/explain, debug, registry and promotion, lineage, runs, report. They take a
project and a request, return typed results and raise ``mlnb.errors``; they never print or exit."""
