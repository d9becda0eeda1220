"""What every handler of mlnb's REST API shares (see :mod:`.routes` for the conventions): the
project the server works on, request bodies parsed against a schema, and :class:`Base`, whose one
reply path turns results into JSON and :mod:`mlnb.errors` into ``{"error": "<one line>"}``."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import os
import re
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import tornado.web
from jupyter_server.base.handlers import APIHandler

from mlnb.core import settings
from mlnb.core.io import find_project_root
from mlnb.errors import MlnbError, UserInputError

ROOT_ENV = "MLNB_PROJECT_ROOT"
MAX_BODY = 64 * 1024
MAX_NOTE = 2000
FIELDS = {"promote": {"run_id": str, "note": str, "force": bool}, "rollback": {"note": str},
          "debug": {"task": str, "run_id": str}}
TASK_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,99}")  # what pipeline.yaml accepts as a task name
REQUIRED = {"promote": ("run_id",), "rollback": (), "debug": ("task",)}


def project_root(root_dir: str) -> Path | None:
    """``$MLNB_PROJECT_ROOT``, else the project (``pipeline.yaml``) at or above the server's root_dir."""
    try:
        return find_project_root(settings.get(ROOT_ENV) or root_dir)
    except MlnbError:
        return None


class ProjectHolder:
    """The server's model registry, opened (model name and experiment read, MLflow pointed at its store)
    on first use only; each request gets it with the project loaded afresh (the user edits its
    parameters, e.g. the promotion policy, while the server runs)."""

    def __init__(self, root: Path | None) -> None:
        self.root = root
        self._registry: Any = None
        self._lock = threading.Lock()

    def get(self) -> Any:
        from mlnb.core.project import load_project
        from mlnb.services import registry

        if self.root is None:
            raise UserInputError("no mlnb project: no pipeline.yaml at or above the server's root directory")
        with self._lock:  # handlers run in threads: open it once
            if self._registry is None:
                self._registry = registry.open_registry(load_project(self.root))
            return dataclasses.replace(self._registry, project=load_project(self.root))


class TooLarge(UserInputError):
    http_status = 413


def parse_body(body: bytes, action: str) -> dict[str, Any]:
    """The JSON object of a POST, checked against ``FIELDS[action]`` (types; unknown keys refused)."""
    if len(body) > MAX_BODY:
        raise TooLarge(f"request body: larger than {MAX_BODY} bytes")
    try:
        data = json.loads(body or b"{}")
    except (ValueError, RecursionError):
        raise UserInputError("request body: not valid JSON") from None
    if not isinstance(data, dict):
        raise UserInputError("request body: expected a JSON object")
    fields = FIELDS[action]
    for key, value in data.items():
        if key not in fields:
            raise UserInputError(f"request body: unknown field (expected {', '.join(sorted(fields))})")
        if not isinstance(value, fields[key]) or (fields[key] is not bool and isinstance(value, bool)):
            raise UserInputError(f"request body: field {key}: expected {fields[key].__name__}")
    for key in REQUIRED[action]:
        if key not in data:
            raise UserInputError(f"request body: field {key} is required")
    if len(data.get("note", "")) > MAX_NOTE:
        raise UserInputError(f"request body: field note: longer than {MAX_NOTE} characters")
    return data


class Base(APIHandler):
    auth_resource = "mlnb"
    # what a successful answer is: a TypedDict of mlnb.core.payloads (None: not JSON, e.g. an artifact)
    payload: object = None

    def initialize(self, project: ProjectHolder) -> None:
        self.project = project

    def write_error(self, status_code: int, **kwargs: Any) -> None:
        exc = kwargs.get("exc_info", (None, None))[1]
        reason = exc.log_message if isinstance(exc, tornado.web.HTTPError) and exc.log_message else None
        self.set_header("Content-Type", "application/json")
        self.finish(json.dumps({"error": reason or self._reason}))

    @property
    def user_name(self) -> str | None:
        """Who acts, for the audit trail: the user an identity provider vouches for (JupyterHub, a
        custom provider), else None, so :func:`mlnb.core.audit.current_user` names the OS user running the
        server. Jupyter's own token and password providers know no person: they make up a random
        anonymous id per browser session."""
        from jupyter_server.auth.identity import IdentityProvider, PasswordIdentityProvider

        if type(self.identity_provider) in (IdentityProvider, PasswordIdentityProvider):
            return None
        user = self.current_user
        return getattr(user, "username", None) or getattr(user, "name", None) or None

    @property
    def server_root(self) -> Path:
        """The Jupyter server's root directory (what the frontend's paths are relative to)."""
        return Path(self.settings.get("server_root_dir") or os.getcwd()).expanduser()

    async def answer(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> None:
        """Run ``fn(project, ...)`` off the event loop and reply with its JSON (or the error)."""
        await self.reply(lambda: fn(self.project.get(), *args, **kwargs))

    async def reply(self, fn: Callable[[], Any], status: int = 200) -> None:
        """Run ``fn()`` off the event loop; answer ``status`` with its JSON, or the error in one line."""
        try:
            result = await asyncio.to_thread(fn)
        except MlnbError as exc:
            self.fail(exc)
            return
        except Exception:  # never a traceback to the client; the server log has it
            self.log.exception("mlnb: %s %s failed", self.request.method, self.request.path)
            self.set_status(500)
            self.finish({"error": "internal error in mlnb (see the Jupyter server log)"})
            return
        self.set_status(status)
        self.finish(json.dumps(result.to_dict() if hasattr(result, "to_dict") else result))

    def fail(self, exc: MlnbError) -> None:
        self.set_status(exc.http_status)
        self.finish({"error": str(exc)})

    def body(self, action: str) -> dict[str, Any] | None:
        """The checked POST body, or None after answering with the error."""
        try:
            return parse_body(self.request.body, action)
        except UserInputError as exc:
            self.fail(exc)
            return None
