"""mlnb: a Jupyter-first MLOps toolkit (notebooks -> Ploomber pipeline, MLflow, gate, export)."""

__version__ = "0.1.0"


def _jupyter_labextension_paths() -> list[dict[str, str]]:
    """The prebuilt JupyterLab extension (``extension/`` built into ``mlnb/labextension``)."""
    return [{"src": "labextension", "dest": "mlnb-jupyterlab"}]
