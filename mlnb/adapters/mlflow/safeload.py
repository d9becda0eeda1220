"""Load a model directory without running code from it.

A pickle (or cloudpickle, or a custom ``python_function`` model) runs whatever its author wrote the
moment it is loaded, and a hash check does not help: the recorded hash is written by whoever
registers the model. skops reads scikit-learn objects without unpickling, but only types on its
``trusted`` list may be built, and MLflow takes that list from the model's own ``MLmodel`` file
(``skops_trusted_types``), which a crafted model fills in itself. So mlnb never reads it: a skops file
loads only when every type skops does not trust by default is on mlnb's own allow-list:

* classes defined in scikit-learn's own modules (``sklearn.*``), checked by importing the name and
  looking at the class, never functions (a function in a model is called by ``predict``);
* nothing else. A project that needs more serves it with the opt-in below.

Anything else is refused with one line (:class:`~mlnb.errors.UnsafeModel`) unless the user opts in
with ``--allow-unsafe-pickle`` (``MLNB_ALLOW_UNSAFE_PICKLE=1``), which ``/version`` then reports.
"""

from __future__ import annotations

import importlib
import os
from pathlib import Path
from typing import Any

from mlnb.core import settings
from mlnb.errors import UnsafeModel

UNSAFE_ENV = "MLNB_ALLOW_UNSAFE_PICKLE"
OPT_IN = "--allow-unsafe-pickle"


def unsafe_allowed() -> bool:
    """Whether the user opted in to loading formats that run code (a process-wide choice)."""
    return bool(settings.get(UNSAFE_ENV))


def allowed_type(name: str) -> bool:
    """A dotted type name skops would build: a class of scikit-learn's own modules."""
    module, _, attr = name.rpartition(".")
    if not module or not (module == "sklearn" or module.startswith("sklearn.")) or not attr.isidentifier():
        return False
    try:
        obj = getattr(importlib.import_module(module), attr)
    except (ImportError, AttributeError):
        return False
    return isinstance(obj, type) and getattr(obj, "__module__", "").split(".")[0] == "sklearn"


def untrusted_types(path: Path) -> list[str]:
    """The types of a skops file that skops does not trust by default, each checked against mlnb's
    allow-list (read from the file's schema: nothing is built)."""
    import skops.io

    untrusted = skops.io.get_untrusted_types(file=path)  # a corrupt file raises: the caller's "failed to load"
    refused = [t for t in untrusted if not allowed_type(t)]
    if refused:
        raise UnsafeModel(f"{path}: names types outside mlnb's allow-list ({', '.join(refused[:5])}"
                          f"{', ...' if len(refused) > 5 else ''}): refused; pass {OPT_IN} only if you trust "
                          "its author")
    return list(untrusted)


def _refuse(model_dir: Path, what: str) -> UnsafeModel:
    return UnsafeModel(f"{model_dir}: {what}, which runs code when loaded: refused (re-export it with "
                       f"mlflow.sklearn's default skops format, or pass {OPT_IN} only if you trust its author)")


def check_model(model_dir: Path) -> tuple[Path | None, bool]:
    """Decide without loading -> (the skops file to load safely, or None when only MLflow's own loader
    can read it; whether that needs the unsafe opt-in). Raises :class:`UnsafeModel` when it would run
    code and the user has not opted in."""
    from mlflow.models import Model

    model_dir = Path(model_dir)
    meta = Model.load(str(model_dir / "MLmodel"))
    conf = meta.flavors.get("sklearn")
    if conf is not None and conf.get("serialization_format", "pickle") == "skops":
        file = model_dir / str(conf.get("pickled_model", "model.skops"))
        if not file.resolve().is_relative_to(model_dir.resolve()):
            raise UnsafeModel(f"{model_dir / 'MLmodel'}: flavors.sklearn.pickled_model: "
                              f"{conf.get('pickled_model')!r} is outside the model directory")
        try:
            if conf.get("code"):
                raise _refuse(model_dir, "ships its own Python code (flavors.sklearn.code)")
            untrusted_types(file)
            return file, False
        except UnsafeModel:
            if not unsafe_allowed():
                raise
            return None, True
    if unsafe_allowed():
        return None, True
    if conf is not None:
        raise _refuse(model_dir, f"is stored as {conf.get('serialization_format', 'pickle')}")
    flavors = ", ".join(sorted(meta.flavors)) or "no flavor"
    raise _refuse(model_dir, f"is a model of flavor {flavors} (only scikit-learn skops models load safely)")


def load_model(model_dir: Path) -> tuple[Any, bool]:
    """The model of an MLflow model directory -> (object with ``predict``, whether the unsafe opt-in
    was needed). scikit-learn skops models give the estimator itself; anything that would run code
    loads only under the opt-in (through MLflow's own loaders) and is refused otherwise."""
    file, unsafe = check_model(model_dir)
    if file is not None:
        import skops.io

        return skops.io.load(file, trusted=untrusted_types(file)), False
    from mlflow.models import Model

    with _mlflow_may_unpickle():
        if "sklearn" in Model.load(str(Path(model_dir) / "MLmodel")).flavors:
            import mlflow.sklearn

            return mlflow.sklearn.load_model(str(model_dir)), unsafe
        import mlflow.pyfunc

        return mlflow.pyfunc.load_model(str(model_dir)), unsafe


class _mlflow_may_unpickle:
    """MLflow's own switch for unpickling, on for the duration of an opted-in load only."""

    NAME = "MLFLOW_ALLOW_PICKLE_DESERIALIZATION"

    def __enter__(self) -> None:
        self.saved = os.environ.get(self.NAME)
        os.environ[self.NAME] = "true"

    def __exit__(self, *exc: object) -> None:
        if self.saved is None:
            os.environ.pop(self.NAME, None)
        else:
            os.environ[self.NAME] = self.saved
