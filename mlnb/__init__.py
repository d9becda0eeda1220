"""mlnb: a Jupyter-first MLOps toolkit (notebooks -> Ploomber pipeline, MLflow, gate, export)."""

__version__ = "0.1.0"
