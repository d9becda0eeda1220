"""HTTP glue of ``mlnb serve``: tornado handlers over the holder, the input parser and the metrics.

Every handler reads its body in a streaming way (nothing is buffered past the limit): a
``Content-Length`` over the limit is answered 413 before one body byte is read, and a chunked body is
cut off with 413 as soon as it passes the limit. Errors are JSON ``{"error_code", "message"}`` (as
MLflow's scoring server answers) and never contain request values or a traceback.
"""

from __future__ import annotations

import logging
import time
import uuid
from dataclasses import dataclass, field
from http import HTTPStatus
from pathlib import Path
from typing import Any

import orjson
import tornado.web

from mlnb.errors import BadRequest, PayloadTooLarge
from mlnb.serving import openapi
from mlnb.serving.feedback import Feedback
from mlnb.serving.feedback import parse as parse_feedback
from mlnb.serving.inputs import parse_request
from mlnb.serving.metrics import CONTENT_TYPE as METRICS_TYPE
from mlnb.serving.metrics import Metrics, merge
from mlnb.serving.model import ModelHolder, predictions_json
from mlnb.serving.predlog import PredictionLog
from mlnb.serving.variants import CHALLENGER, CHAMPION, Comparer, Router, Slot, Split

log = logging.getLogger("mlnb.serve")
SMALL_BODY = 64 * 1024  # for the GET endpoints, which take no body


@dataclass
class State:
    holder: ModelHolder
    metrics: Metrics
    max_body: int = 10 * 2 ** 20
    predlog: PredictionLog | None = None
    versions: dict[str, str] = field(default_factory=dict)  # mlnb, mlflow versions for /version
    draining: bool = False
    pending: set[Any] = field(default_factory=set)  # responses still being written (shutdown waits)
    challenger: Slot = field(default_factory=Slot)  # empty: the champion answers every request
    split: Split = field(default_factory=Split)
    router: Router | None = None
    comparer: Comparer | None = None
    drift: Any = None  # mlnb.serving.drift.DriftGauges, with --drift-reference
    feedback: Feedback = field(default_factory=Feedback)
    peers: Path | None = None  # with --workers N: where every worker leaves its metrics for the others

    def with_challenger(self, slot: Slot, split: Split) -> None:
        """Serve ``slot`` beside the champion, sharing requests as ``split`` says."""
        self.challenger, self.split, self.router = slot, split, Router(split, slot)
        self.comparer = Comparer(self.metrics, self.score, self._log_shadow, split.queue_size)

    def model(self, variant: str) -> Any:
        return self.holder.current if variant == CHAMPION else self.challenger.current

    def score(self, variant: str, frame: Any) -> Any:
        model = self.model(variant)
        return None if model is None else model.predict(frame)

    def _log_shadow(self, variant: str, request_id: str, frame: Any, predictions: Any) -> None:
        model = self.model(variant)
        if self.predlog is not None and model is not None and self.split.shadow:
            self.predlog.offer(request_id, model.identity, frame, predictions, variant, shadow=True)


@tornado.web.stream_request_body
class Base(tornado.web.RequestHandler):
    endpoint = "other"
    body_limit: int = SMALL_BODY
    variant = ""  # the variant that answered (/invocations)

    def initialize(self, state: State) -> None:
        self.state = state
        self._chunks: list[bytes] = []
        self._size = 0

    def set_default_headers(self) -> None:
        self.set_header("Server", "mlnb")
        self.set_header("X-Content-Type-Options", "nosniff")
        self.set_header("Cache-Control", "no-store")

    def limit(self) -> int:
        return self.body_limit

    def prepare(self) -> None:
        length = self.request.headers.get("Content-Length")
        if length is not None and (not length.isdigit() or int(length) > self.limit()):
            self.refuse(PayloadTooLarge(f"request body: over the {_size(self.limit())} limit"))

    def data_received(self, chunk: bytes) -> None:
        if self._finished:
            return
        self._size += len(chunk)
        if self._size > self.limit():
            self._chunks = []
            self.refuse(PayloadTooLarge(f"request body: over the {_size(self.limit())} limit"))
            return
        self._chunks.append(chunk)

    @property
    def body(self) -> bytes:
        return b"".join(self._chunks)

    def refuse(self, error: BadRequest) -> None:
        self.send_json(error.http_status, {"error_code": error.error_code, "message": str(error)})

    def send_json(self, status: int, payload: Any) -> None:
        self.set_status(status)
        self.set_header("Content-Type", "application/json")
        self.finish(payload if isinstance(payload, bytes) else orjson.dumps(payload))

    def write_error(self, status_code: int, **kwargs: Any) -> None:  # tornado's own errors: 404, 405, ...
        phrase = HTTPStatus(status_code).phrase if status_code in HTTPStatus._value2member_map_ else "Error"
        code = phrase.upper().replace(" ", "_").replace("-", "_")
        if status_code == 405:  # RFC 9110: say which methods are
            base = tornado.web.RequestHandler
            self.set_header("Allow", ", ".join(m for m in ("GET", "POST") if getattr(type(self), m.lower())
                                               is not getattr(base, m.lower())))
        self.set_header("Content-Type", "application/json")
        self.finish(orjson.dumps({"error_code": code, "message": phrase}))

    def finish(self, chunk: Any = None) -> Any:
        future = super().finish(chunk)
        self.state.pending.add(future)
        future.add_done_callback(self.state.pending.discard)
        return future

    def on_finish(self) -> None:
        self.state.metrics.request(self.endpoint, self.get_status(), self.variant)


class Invocations(Base):
    endpoint = "/invocations"

    def limit(self) -> int:
        return self.state.max_body

    def post(self) -> None:
        if self._finished:
            return
        start = time.perf_counter()
        state = self.state
        variant = state.router.pick(self.request.headers.get(state.split.header)) if state.router else CHAMPION
        model = state.model(variant)  # this request uses this model to the end, whatever swaps
        if model is None:  # the challenger retired since it was picked
            variant, model = CHAMPION, state.holder.current
        self.variant = variant
        request_id = uuid.uuid4().hex
        self.set_header("X-Request-Id", request_id)
        self.set_header("X-Model-Version", model.identity.model_version or "")
        self.set_header("X-Model-Variant", variant)
        rows = 0
        try:
            frame = parse_request(self.body, self.request.headers.get("Content-Type"), model.schema)
            try:
                predictions = model.predict(frame)
            except Exception as exc:  # the model refused validated rows (e.g. values that overflow)
                state.metrics.scored_error(variant)
                log.warning("request %s: the %s raised %s: %s", request_id, variant, type(exc).__name__,
                            (str(exc).splitlines() or [""])[0][:200])
                raise BadRequest(f"the model could not score these rows ({type(exc).__name__}); "
                                 f"see the server log for request {request_id}") from None
            payload = predictions_json(predictions)
            rows = len(frame)
        except BadRequest as exc:
            self.refuse(exc)
        else:
            self.send_json(200, payload)
            if state.predlog is not None:
                state.predlog.offer(request_id, model.identity, frame, predictions, variant)
            if state.drift is not None and variant == CHAMPION:
                state.drift.offer(frame, predictions)
            state.feedback.answered(request_id, variant, model.identity.model_version, predictions)
            if state.comparer is not None and state.challenger.current is not None:
                if state.split.shadow:  # the challenger scores a copy, after the answer
                    state.comparer.offer(CHALLENGER, request_id, frame, predictions)
                elif variant == CHALLENGER:  # the canary's share: what would the champion have said?
                    state.comparer.offer(CHAMPION, request_id, frame, predictions)
        state.metrics.scored(time.perf_counter() - start, rows, variant)


class FeedbackHandler(Base):
    endpoint = "/feedback"

    def limit(self) -> int:
        return self.state.max_body

    def post(self) -> None:
        if self._finished:
            return
        try:
            try:
                body = orjson.loads(self.body)
            except orjson.JSONDecodeError:
                raise BadRequest("feedback: the body is not JSON") from None
            records = parse_feedback(body)
        except BadRequest as exc:
            self.refuse(exc)
            return
        outcome = self.state.feedback.receive(records)
        if self.state.predlog is not None:
            self.state.predlog.feedback(records)
        self.send_json(200, {**outcome, "logged": self.state.predlog is not None})


class Health(Base):
    endpoint = "/health"

    def get(self) -> None:
        self.send_json(200, {"status": "ok"})


class Ping(Health):
    endpoint = "/ping"


class Ready(Base):
    endpoint = "/ready"

    def get(self) -> None:
        model = self.state.holder.current
        if self.state.draining:
            self.send_json(503, {"error_code": "SHUTTING_DOWN", "message": "the service is shutting down"})
        else:
            challenger = self.state.challenger.current
            self.send_json(200, {"status": "ready", "model_version": model.identity.model_version,
                                 "loaded_at": model.loaded_at,
                                 **({"challenger_version": challenger.identity.model_version} if challenger else {})})


class Version(Base):
    endpoint = "/version"

    def get(self) -> None:
        state, model = self.state, self.state.holder.current
        answer = {**model.identity.to_dict(), "loaded_at": model.loaded_at, "unsafe_load": model.unsafe,
                  **state.versions}
        if state.router is not None:  # both variants, and how requests are shared
            answer["variants"] = {v: _described(state.model(v)) for v in (CHAMPION, CHALLENGER)}
            answer["split"] = {"traffic_percent": state.split.traffic, "shadow": state.split.shadow,
                               "routing_header": state.split.header,
                               "challenger_serving": state.challenger.current is not None}
        self.send_json(200, answer)


def _described(model: Any) -> dict[str, Any] | None:
    if model is None:
        return None
    return {**model.identity.to_dict(), "loaded_at": model.loaded_at, "unsafe_load": model.unsafe}


class MetricsPage(Base):
    endpoint = "/metrics"

    def get(self) -> None:
        self.set_header("Content-Type", METRICS_TYPE)
        own = self.state.metrics.render()
        peers = self.state.peers
        if peers is None:
            self.finish(own)
            return
        texts = [own]  # every worker's series in one scrape, whichever worker answers it
        for path in sorted(peers.glob("worker-*.prom")):
            if path.name != f"worker-{self.state.metrics.worker}.prom":
                try:
                    texts.append(path.read_text(encoding="utf-8"))
                except OSError:  # a worker being restarted
                    continue
        self.finish(merge(texts))


class OpenAPI(Base):
    endpoint = "/openapi.json"

    def get(self) -> None:
        model = self.state.holder.current
        self.send_json(200, openapi.document(model.schema, model.identity, self.state.versions.get("mlnb", "")))


class NotFound(Base):
    def prepare(self) -> None:
        super().prepare()
        if not self._finished:
            self.send_json(404, {"error_code": "NOT_FOUND", "message": "no such endpoint (see /openapi.json)"})


def make_app(state: State) -> tornado.web.Application:
    routes = [(r"/invocations", Invocations), (r"/feedback", FeedbackHandler),
              (r"/health", Health), (r"/ping", Ping), (r"/ready", Ready),
              (r"/version", Version), (r"/metrics", MetricsPage), (r"/openapi.json", OpenAPI)]
    return tornado.web.Application([(path, cls, {"state": state}) for path, cls in routes],
                                   default_handler_class=NotFound, default_handler_args={"state": state},
                                   compress_response=False, serve_traceback=False, log_function=_access)


def _access(handler: tornado.web.RequestHandler) -> None:
    logging.getLogger("mlnb.serve.access").debug("%d %s %s %.2fms", handler.get_status(), handler.request.method,
                                                  getattr(handler, "endpoint", "other"),
                                                  1000 * handler.request.request_time())


def _size(n: int) -> str:
    return f"{n / 2 ** 20:g} MiB" if n >= 2 ** 20 else f"{n / 1024:g} KiB" if n >= 1024 else f"{n} bytes"
