"""Tornado handlers of mlnb's REST API, thin over :mod:`mlnb.services.registry` (no logic here).

``POST promote``, ``POST rollback``, ``GET promotions``, ``POST debug`` (a failed task's debug
notebook, :mod:`mlnb.services.debug`), ``GET runs/<id>/lineage`` (``?verify=1``); the Runs panel's ``GET runs...``
and ``GET compare`` are in :mod:`.runs`. Every
handler is ``@tornado.web.authenticated`` and ``@authorized`` (resource ``mlnb``); POSTs need the
XSRF token as everywhere in Jupyter. Errors are JSON ``{"error": "<one line>"}`` with the error's
status code; neither a traceback nor the request body is ever sent back.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import tornado.web
from jupyter_server.auth.decorator import authorized
from jupyter_server.utils import url_path_join

from mlnb.core import payloads
from mlnb.errors import UserInputError
from mlnb.jupyter.base import TASK_NAME, Base, ProjectHolder, project_root
from mlnb.jupyter.pipeline import pipeline_handlers
from mlnb.jupyter.runs import ROUTES as RUNS_ROUTES

__all__ = ["project_root", "setup_route_handlers"]


class LineageHandler(Base):
    payload = payloads.Lineage

    @tornado.web.authenticated
    @authorized
    async def get(self, run_id: str) -> None:
        from mlnb.services import lineage

        verify = self.get_query_argument("verify", "0") in ("1", "true")
        await self.answer(lineage.lineage, run_id, verify=verify)


class PromoteHandler(Base):
    payload = payloads.Change

    @tornado.web.authenticated
    @authorized
    async def post(self) -> None:
        from mlnb.services import promotion

        data = self.body("promote")
        if data is not None:
            await self.answer(promotion.promote, data["run_id"], note=data.get("note", ""),
                              force=data.get("force", False), user=self.user_name)


class RollbackHandler(Base):
    payload = payloads.Change

    @tornado.web.authenticated
    @authorized
    async def post(self) -> None:
        from mlnb.services import promotion

        data = self.body("rollback")
        if data is not None:
            await self.answer(promotion.rollback, note=data.get("note", ""), user=self.user_name)


class PromotionsHandler(Base):
    payload = payloads.Promotions

    @tornado.web.authenticated
    @authorized
    async def get(self) -> None:
        from mlnb.services import registry

        await self.answer(lambda project: {"promotions": registry.promotions(project)})


class DebugHandler(Base):
    payload = payloads.DebugNotebook

    @tornado.web.authenticated
    @authorized
    async def post(self) -> None:
        from mlnb.services import debug

        data = self.body("debug")
        if data is not None and not TASK_NAME.fullmatch(data["task"]):
            self.fail(UserInputError("request body: field task: not a task name"))  # never echoed back
        elif data is not None:
            server_root = self.server_root
            await self.answer(lambda models: debug.debug_notebook_for(models.project, data["task"], server_root,
                                                                      data.get("run_id")))


def setup_route_handlers(web_app: Any, root: Path | None) -> None:
    base = url_path_join(web_app.settings["base_url"], "mlnb", "api")
    routes = [*RUNS_ROUTES, (r"runs/([^/]+)/lineage", LineageHandler), ("promote", PromoteHandler),
              ("rollback", RollbackHandler), ("promotions", PromotionsHandler), ("debug", DebugHandler)]
    holder = ProjectHolder(root)
    web_app.add_handlers(".*$", [(url_path_join(base, path), handler, {"project": holder})
                                 for path, handler in routes])
    web_app.add_handlers(".*$", pipeline_handlers(base, root))
