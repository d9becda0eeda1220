"""The jupyter_server extension: mlnb's REST API under ``<base_url>mlnb/api/`` (see :mod:`.routes`).

Enabled for every Jupyter server once mlnb is installed (``etc/jupyter/jupyter_server_config.d/
mlnb.json``); the JupyterLab frontend (``extension/``, built into ``mlnb/labextension``) calls it.
"""

from __future__ import annotations

from typing import Any


def _jupyter_server_extension_points() -> list[dict[str, str]]:
    return [{"module": "mlnb.jupyter"}]


def _load_jupyter_server_extension(serverapp: Any) -> None:
    from mlnb.jupyter.routes import project_root, setup_route_handlers

    root = project_root(serverapp.root_dir)
    setup_route_handlers(serverapp.web_app, root)
    serverapp.log.info("mlnb: REST API at %smlnb/api/ for project %s", serverapp.base_url,
                       root or "(none found: no pipeline.yaml at or above the server's root_dir)")
