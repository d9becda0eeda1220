"""``mlnb debug TASK --pdb``: the failing cell on, as plain Python, in a restored namespace.

:func:`prepare` restores the namespace the failure snapshot holds (or starts empty when the cells
before the failing one are cheap: :func:`mlnb.services.debug.pdb_plan` decides) and yields each code
cell to run as ``(label, source)``, magics and shell lines blanked. Running them, and the debugger on
the first exception, is the command line's part (:mod:`mlnb.cli.debug`): it is interactive.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mlnb.core.notebooks import cell_source
from mlnb.core.outcomes import FailureManifest
from mlnb.errors import UserInputError


@dataclass
class Replay:
    namespace: dict[str, Any]
    first: int  # the index of the first cell in ``cells``
    restored: bool  # from the failure snapshot (else from the notebook's start)
    cells: list[tuple[str, str]]  # (label, plain Python source)


def prepare(found: FailureManifest, cells: list[dict[str, Any]], snapshot: Path | None) -> Replay:
    """The namespace to run ``cells`` in and their plain sources; a snapshot that cannot be restored
    here (a library upgraded since) is one line naming it."""
    ns: dict[str, Any] = {"__name__": "__main__"}
    first = 0
    if snapshot is not None:
        from mlnb.engine.checkpoint import restore

        try:
            restore(ns, snapshot)
        except Exception as exc:
            raise UserInputError(f"{snapshot}: the snapshot cannot be restored here: {type(exc).__name__}: "
                                 f"{str(exc)[:200]}") from None
        first = found.cell.index if found.cell else 0  # pdb_plan refuses a manifest without a cell
    code = [c for c in cells if c.get("cell_type") == "code"]
    plain = ["\n".join("" if ln.lstrip().startswith(("%", "!")) else ln for ln in cell_source(c).splitlines())
             for c in code]
    return Replay(ns, first, snapshot is not None, [(f"<cell {first + i}>", src) for i, src in enumerate(plain)])
