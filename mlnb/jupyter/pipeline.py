"""Tornado handlers of the Pipeline panel, thin over :mod:`mlnb.services.pipeline_state` and :mod:`.pipeline_builds`.

``GET pipeline`` (the DAG, each task's state, the current build), ``GET pipeline/events`` (server-sent
events: a ``snapshot`` first, then every build event as it happens), ``POST pipeline/build``
(``{"mode": "build" | "force" | "resume"}``: 202, or 409 naming the running build's pid) and
``POST pipeline/stop`` (SIGINT to the running build; 409 when none runs). Authenticated and
authorized like the rest of the API (:mod:`.routes`); POSTs need the XSRF token.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import tornado.iostream
import tornado.web
from jupyter_server.auth.decorator import authorized
from jupyter_server.utils import url_path_join

from mlnb.core import payloads
from mlnb.errors import MlnbError, UserInputError
from mlnb.jupyter.base import MAX_BODY, Base, TooLarge
from mlnb.jupyter.pipeline_builds import Builds

KEEPALIVE = 15.0  # seconds between comments on an idle event stream
CLOSED: dict[str, Any] = {"event": "closed"}  # put in a listener's queue when its client goes away


class Project:
    """The server's project for the Pipeline panel (None: no pipeline.yaml found)."""

    def __init__(self, root: Path | None) -> None:
        self.root = root
        self._builds: Builds | None = None

    def require(self) -> Path:
        if self.root is None:
            raise UserInputError("no mlnb project: no pipeline.yaml at or above the server's root directory")
        return self.root

    def builds(self, server_root: Path) -> Builds:
        if self._builds is None:
            root = self.require()
            self._builds = Builds(root, lambda: _snapshot(root, server_root))
        return self._builds


def _snapshot(root: Path, server_root: Path) -> dict[str, Any]:
    from mlnb.adapters.ploomber.factory import spec_from_factory
    from mlnb.core.project import load_project
    from mlnb.services.pipeline_state import snapshot

    # read afresh (the user edits the project meanwhile); ENTRY_POINT, as for the CLI, says which pipeline
    return snapshot(load_project(root, factory_loader=spec_from_factory), server_root)


def build_mode(body: bytes) -> str:
    """The ``mode`` of a ``POST pipeline/build`` body (empty: ``build``)."""
    if len(body) > MAX_BODY:
        raise TooLarge(f"request body: larger than {MAX_BODY} bytes")
    try:
        data = json.loads(body or b"{}")
    except (ValueError, RecursionError):
        raise UserInputError("request body: not valid JSON") from None
    if not isinstance(data, dict) or set(data) - {"mode"}:
        raise UserInputError("request body: expected a JSON object with only the field mode")
    mode = data.get("mode", "build")
    if not isinstance(mode, str):
        raise UserInputError("request body: field mode: expected str")
    return mode


class PipelineBase(Base):
    def initialize(self, pipeline: Project) -> None:  # type: ignore[override]
        self.pipeline = pipeline

    def builds(self) -> Builds:
        return self.pipeline.builds(self.server_root)


class PipelineHandler(PipelineBase):
    payload = payloads.PipelineSnapshot

    @tornado.web.authenticated
    @authorized
    async def get(self) -> None:
        await self.reply(lambda: _snapshot(self.pipeline.require(), self.server_root))


class BuildHandler(PipelineBase):
    payload = payloads.BuildStarted

    @tornado.web.authenticated
    @authorized
    async def post(self) -> None:
        try:
            mode = build_mode(self.request.body)
            builds = self.builds()
        except MlnbError as exc:
            self.fail(exc)
            return
        await self.reply(lambda: builds.start(mode), status=202)


class StopHandler(PipelineBase):
    payload = payloads.BuildStopped

    @tornado.web.authenticated
    @authorized
    async def post(self) -> None:
        try:
            stopped = self.builds().stop()
        except MlnbError as exc:
            self.fail(exc)
            return
        self.builds().escalate(stopped["pid"])
        self.set_status(202)
        self.finish(json.dumps(stopped))


class EventsHandler(PipelineBase):
    """``text/event-stream``: ``data: <json>`` messages until the client goes away."""

    payload = payloads.PipelineEvent

    @tornado.web.authenticated
    @authorized
    async def get(self) -> None:
        try:
            builds = self.builds()
        except MlnbError as exc:
            self.fail(exc)
            return
        self.set_header("Content-Type", "text/event-stream")
        self.set_header("Cache-Control", "no-cache")
        self.set_header("X-Accel-Buffering", "no")
        queue = self.queue = builds.listen()
        try:
            try:
                first = {"event": "snapshot", **await asyncio.to_thread(builds.snapshot)}
            except MlnbError as exc:
                first = {"event": "error", "error": str(exc)}
            await self.send(first)
            while True:
                try:
                    event = await asyncio.wait_for(queue.get(), KEEPALIVE)
                except TimeoutError:
                    self.write(": keepalive\n\n")
                    await self.flush()
                    continue
                if event is CLOSED:
                    break
                await self.send(event)
        except tornado.iostream.StreamClosedError:
            pass
        finally:
            builds.forget(queue)

    async def send(self, event: dict[str, Any]) -> None:
        self.write(f"data: {json.dumps(event)}\n\n")
        await self.flush()

    def on_connection_close(self) -> None:
        queue = getattr(self, "queue", None)
        if queue is not None:
            queue.put_nowait(CLOSED)
        super().on_connection_close()


def pipeline_handlers(base: str, root: Path | None) -> list[tuple[str, type, dict[str, Any]]]:
    """The Pipeline panel's routes under ``base`` (``<base_url>mlnb/api``)."""
    project = Project(root)
    routes = [("pipeline", PipelineHandler), ("pipeline/events", EventsHandler), ("pipeline/build", BuildHandler),
              ("pipeline/stop", StopHandler)]
    return [(url_path_join(base, path), handler, {"pipeline": project}) for path, handler in routes]
