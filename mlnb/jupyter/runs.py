"""The Runs panel's handlers, thin over :mod:`mlnb.services.runs` (see :mod:`.routes` for the conventions).

``GET runs?limit=N``, ``GET runs/changes`` (a token to poll), ``GET runs/<id>`` (detail),
``GET runs/<id>/artifacts/<path>`` (an image artifact, streamed), ``GET compare?a=<id>&b=<id>``.
"""

from __future__ import annotations

import asyncio
import shutil
import tempfile
from pathlib import Path

import tornado.web
from jupyter_server.auth.decorator import authorized

from mlnb.core import payloads
from mlnb.errors import MlnbError, UserInputError
from mlnb.jupyter.base import Base

MAX_LIMIT = 500
CHUNK = 64 * 1024


class RunsHandler(Base):
    payload = payloads.RunList

    @tornado.web.authenticated
    @authorized
    async def get(self) -> None:
        from mlnb.services import runs

        try:
            limit = int(self.get_query_argument("limit", "20"))
        except ValueError:
            self.fail(UserInputError("query limit: expected an integer"))
            return
        if not 1 <= limit <= MAX_LIMIT:
            self.fail(UserInputError(f"query limit: expected 1 to {MAX_LIMIT}"))
            return
        await self.answer(runs.list_runs, limit)


class ChangesHandler(Base):
    payload = payloads.RunChanges

    @tornado.web.authenticated
    @authorized
    async def get(self) -> None:
        from mlnb.services import runs

        await self.answer(runs.changes)


class RunHandler(Base):
    payload = payloads.RunDetail

    @tornado.web.authenticated
    @authorized
    async def get(self, run_id: str) -> None:
        from mlnb.services import runs

        await self.answer(runs.run_detail, run_id, user=self.user_name)


class CompareHandler(Base):
    payload = payloads.Comparison

    @tornado.web.authenticated
    @authorized
    async def get(self) -> None:
        from mlnb.services import runs

        a, b = self.get_query_argument("a", ""), self.get_query_argument("b", "")
        await self.answer(runs.compare, a, b)


class ArtifactHandler(Base):
    """One image artifact of a build or task run of the project, streamed in chunks from a private
    temporary copy (the artifact store may be remote); JSON errors like every other handler."""

    @tornado.web.authenticated
    @authorized
    async def get(self, run_id: str, path: str) -> None:
        from mlnb.services import runs

        tmp = Path(tempfile.mkdtemp(prefix="mlnb-artifact-"))
        try:
            try:
                local, content_type = await asyncio.to_thread(
                    lambda: runs.artifact(self.project.get(), run_id, path, tmp))
            except MlnbError as exc:
                self.fail(exc)
                return
            except Exception:  # never a traceback to the client; the server log has it
                self.log.exception("mlnb: GET %s failed", self.request.path)
                self.set_status(500)
                self.finish({"error": "internal error in mlnb (see the Jupyter server log)"})
                return
            self.set_header("Content-Type", content_type)  # before the first flush sends the headers
            self.set_header("X-Content-Type-Options", "nosniff")
            self.set_header("Cache-Control", "private, max-age=3600")  # a run's artifacts do not change
            with local.open("rb") as fh:
                while chunk := fh.read(CHUNK):
                    self.write(chunk)
                    await self.flush()
            await self.finish(set_content_type=content_type)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)


# Order matters: tornado takes the first match, so the fixed paths come before ``runs/<id>``.
ROUTES = [("runs", RunsHandler), ("runs/changes", ChangesHandler),
          (r"runs/([^/]+)/artifacts/(.+)", ArtifactHandler), (r"runs/([^/]+)", RunHandler),
          ("compare", CompareHandler)]
