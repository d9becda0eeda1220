"""Run-time hand-off of variables between the steps of a converted pipeline.

Imported by generated task notebooks (``from mlnb.convert import handoff``). A step saves
the variables later steps read into its ``data`` product, a directory::

    products/<step>/data/manifest.json   {"df": {"format": "parquet", ...}, ...}
    products/<step>/data/df.parquet      pandas objects, when parquet round-trips them exactly
    products/<step>/data/objects.pkl     everything else, in one pickle so objects shared between
                                         names stay shared (cloudpickle; notebook classes by reference)

The directory is written beside its final place and renamed into it, so a failed step
never leaves a half-written product. Run interactively (no Ploomber-injected
``product``/``upstream``), paths default to ``products/<step>/data`` under the
directory holding ``pipeline.yaml``.
"""

from __future__ import annotations

import io
import json
import os
import pickle
import sys
import threading
import types
from pathlib import Path
from typing import Any

from mlnb.core.io import atomic_dir
from mlnb.errors import HandoffError

NP_RNG = "__np_random__"
PY_RNG = "__py_random__"
_LOCK_TYPES = (type(threading.Lock()), type(threading.RLock()), threading.Condition, threading.Semaphore,
               threading.Event, threading.Barrier)


def _default_dir(step: str) -> Path:
    here = Path.cwd().resolve()
    for candidate in (here, *here.parents):
        if (candidate / "pipeline.yaml").is_file():
            return candidate / "products" / step / "data"
    raise HandoffError(f"step `{step}`: no pipeline.yaml in {here} or above; run the step inside the pipeline")


def _why_not(value: Any) -> str:
    if isinstance(value, types.GeneratorType | types.AsyncGeneratorType | types.CoroutineType):
        return "a generator"
    if isinstance(value, io.IOBase):
        return "an open file"
    if isinstance(value, types.ModuleType):
        return "a module"
    if isinstance(value, _LOCK_TYPES):
        return "a lock"
    return ""


def _pickle(value: Any) -> bytes:
    import cloudpickle

    main = sys.modules.get("__main__")

    class Pickler(cloudpickle.Pickler):
        def reducer_override(self, obj: Any) -> Any:
            # A class defined in the notebook is pickled by reference: the reading step
            # carries the same definition, so isinstance() keeps working there.
            if isinstance(obj, type) and obj.__module__ == "__main__" and getattr(main, obj.__qualname__, None) is obj:
                return NotImplemented
            return super().reducer_override(obj)

    buf = io.BytesIO()
    Pickler(buf, protocol=pickle.HIGHEST_PROTOCOL).dump(value)
    return buf.getvalue()


def _parquet(value: Any) -> tuple[bytes, dict[str, Any]] | None:
    """Parquet bytes for a pandas object when reading them back gives an equal object."""
    import pandas as pd

    if isinstance(value, pd.Series):
        if not (value.name is None or isinstance(value.name, str | int)):
            return None
        frame, meta = value.to_frame(name="__value__"), {"kind": "series", "name": value.name}
    elif isinstance(value, pd.DataFrame):
        frame, meta = value, {"kind": "frame"}
    else:
        return None
    if value.attrs or not all(isinstance(c, str) for c in frame.columns):
        return None
    try:
        buf = io.BytesIO()
        frame.to_parquet(buf)
        data = buf.getvalue()
        back = _from_parquet(data, meta)
        if isinstance(value, pd.Series):
            pd.testing.assert_series_equal(value, back, check_exact=True, check_freq=True, check_flags=True,
                                           check_index_type=True, check_series_type=True)
        else:
            pd.testing.assert_frame_equal(value, back, check_exact=True, check_freq=True, check_flags=True,
                                          check_index_type=True, check_column_type=True, check_frame_type=True)
        if list(back.index.names) != list(value.index.names):
            return None
    except Exception:  # any failure means "not lossless": fall back to pickle
        return None
    return data, meta


def _from_parquet(data: bytes, meta: dict[str, Any]) -> Any:
    import pandas as pd

    frame = pd.read_parquet(io.BytesIO(data))
    if meta["kind"] == "series":
        return frame["__value__"].rename(meta["name"])
    return frame


def save(product: Any, step: str, names: list[str], namespace: dict[str, Any]) -> None:
    """Save ``names`` from ``namespace`` (the step's globals) for downstream steps."""
    target = Path(product["data"]) if isinstance(product, dict) and "data" in product else _default_dir(step)
    manifest: dict[str, Any] = {}
    objects: dict[str, Any] = {}
    with atomic_dir(target) as tmp:
        for name in names:
            if name == NP_RNG:
                if "numpy" not in sys.modules:
                    continue
                value: Any = sys.modules["numpy"].random.get_state()
            elif name == PY_RNG:
                import random

                value = random.getstate()
            elif name not in namespace:
                continue  # bound only on a path not taken: readers fail as the original would
            else:
                value = namespace[name]
            why = _why_not(value)
            if why:
                raise HandoffError(f"step `{step}`: variable `{name}` is {why} and cannot be handed to later steps; "
                                   f"re-run `mlnb convert` so the steps that share it are merged")
            kind = f"{type(value).__module__}.{type(value).__qualname__}"
            parquet = _parquet(value)
            if parquet is not None:
                data, meta = parquet
                (tmp / f"{name}.parquet").write_bytes(data)
                manifest[name] = {**meta, "format": "parquet", "file": f"{name}.parquet", "type": kind}
            else:
                objects[name] = value
                manifest[name] = {"format": "pickle", "file": "objects.pkl", "type": kind}
        if objects:
            try:
                data = _pickle(objects)
            except Exception:  # find the culprit, whatever the pickling error
                for name, value in objects.items():
                    try:
                        _pickle(value)
                    except Exception as exc:
                        raise HandoffError(f"step `{step}`: variable `{name}` ({type(value).__name__}) cannot be "
                                           f"pickled: {exc}") from None
                raise
            (tmp / "objects.pkl").write_bytes(data)
        with open(tmp / "manifest.json", "w", encoding="utf-8") as fh:
            json.dump(manifest, fh, indent=1, sort_keys=True)
            fh.flush()
            os.fsync(fh.fileno())


class _Unpickler(pickle.Unpickler):
    """Unpickle so that notebook functions (lambdas too) live in *this* step's namespace.

    cloudpickle gives a function pickled by value a private copy of the globals it reads,
    frozen at save time. A notebook function reads globals when called, so here such a
    function gets ``__main__``'s namespace instead; globals the step lacks are filled in
    from the copy (never overwriting the step's own).
    """

    def find_class(self, module: str, name: str) -> Any:
        if module == "cloudpickle.cloudpickle" and name == "_make_function":
            return _make_function
        if module == "cloudpickle.cloudpickle" and name == "_function_setstate":
            return _function_setstate
        return super().find_class(module, name)


def _make_function(code: Any, base_globals: dict[str, Any], name: str, argdefs: Any, closure: Any) -> Any:
    main = sys.modules.get("__main__")
    if base_globals.get("__name__") == "__main__" and main is not None:
        base_globals = main.__dict__
    return types.FunctionType(code, base_globals, name, argdefs, closure)


def _function_setstate(obj: Any, state: Any) -> None:
    from cloudpickle import cloudpickle as cp

    main = sys.modules.get("__main__")
    if main is None or obj.__globals__ is not main.__dict__:
        cp._function_setstate(obj, state)
        return
    own, slots = state
    for key, value in slots["__globals__"].items():
        main.__dict__.setdefault(key, value)
    builtins = main.__dict__.get("__builtins__")
    cp._function_setstate(obj, (own, {**slots, "__globals__": {}}))
    main.__dict__["__builtins__"] = builtins


_OBJECTS: dict[tuple[str, int, int], dict[str, Any]] = {}


def _objects(path: Path) -> dict[str, Any]:
    """One unpickling per producer and process: names that shared an object share it again."""
    st = path.stat()
    key = (str(path), st.st_size, st.st_mtime_ns)
    if key not in _OBJECTS:
        with open(path, "rb") as fh:
            _OBJECTS[key] = _Unpickler(fh).load()
    return _OBJECTS[key]


def load(upstream: Any, step: str, name: str) -> Any:
    """The value of ``name`` as step ``step`` left it (RNG pseudo-names restore the RNG)."""
    if isinstance(upstream, dict) and step in upstream:
        products = upstream[step]
        source = Path(products["data"] if isinstance(products, dict) else products)
    else:
        source = _default_dir(step)
    manifest_path = source / "manifest.json"
    if not manifest_path.is_file():
        raise HandoffError(f"{source}: no hand-off from step `{step}`; build it first (`ploomber build`)")
    manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
    if name not in manifest:
        raise NameError(f"name {name!r} is not defined (step `{step}` did not define it)")
    entry = manifest[name]
    if entry["format"] == "parquet":
        value = _from_parquet((source / entry["file"]).read_bytes(), entry)
    else:
        value = _objects(source / entry["file"])[name]
    if name == NP_RNG:
        import numpy

        numpy.random.set_state(value)
        return None
    if name == PY_RNG:
        import random

        random.setstate(value)
        return None
    return value
