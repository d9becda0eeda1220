"""The jupyter_client / nbclient classes the ``mlnb`` papermill engine uses (built lazily, so
importing mlnb does not import jupyter_client)."""

from __future__ import annotations

import time
from typing import Any


def ready_client_class() -> type:
    from queue import Empty

    from jupyter_client.asynchronous import AsyncKernelClient

    class ReadyClient(AsyncKernelClient):  # type: ignore[misc, valid-type]
        """``wait_for_ready`` without jupyter_client's fixed sleeps (0.2 s to "check" IOPub, then
        0.2 s of silence to "flush" it, on every kernel start): ready is the shell reply to our
        ``kernel_info`` *and* IOPub's ``idle`` status for that same request, which proves the
        IOPub subscription is live. Leftover IOPub messages are drained without waiting (nbclient
        ignores messages whose parent is not the cell it is running anyway)."""

        async def _async_wait_for_ready(self, timeout: float | None = None) -> None:
            deadline = time.monotonic() + (timeout if timeout is not None else float("inf"))
            reply_wait = 0.05
            while True:
                msg_id = self.kernel_info()
                reply = None
                try:
                    while reply is None:
                        msg = await self.shell_channel.get_msg(timeout=reply_wait)
                        if msg["parent_header"].get("msg_id") == msg_id and msg["msg_type"] == "kernel_info_reply":
                            reply = msg
                except Empty:
                    pass
                if reply is not None:
                    try:
                        while True:
                            msg = await self.iopub_channel.get_msg(timeout=0.1)
                            if (msg["parent_header"].get("msg_id") == msg_id and msg["msg_type"] == "status"
                                    and msg["content"].get("execution_state") == "idle"):
                                break
                    except Empty:  # IOPub not connected in time: ask again
                        continue
                    self._handle_kernel_info_reply(reply)
                    break
                reply_wait = min(1.0, reply_wait * 2)
                if not await self._async_is_alive():
                    raise RuntimeError("Kernel died before replying to kernel_info")
                if time.monotonic() > deadline:
                    raise RuntimeError(f"Kernel didn't respond in {timeout:.0f} seconds")
            while True:
                try:
                    await self.iopub_channel.get_msg(timeout=0)
                except Empty:
                    break

        wait_for_ready = _async_wait_for_ready  # AsyncKernelClient binds the name at class creation

    return ReadyClient



def resuming_client_class() -> type:
    from papermill.clientwrap import PapermillNotebookClient

    class ResumingClient(PapermillNotebookClient):  # type: ignore[misc, valid-type]
        """papermill's client, but the cells before ``resume["cell_id"]`` are not executed: their
        outputs come from the partial notebook of the failed run, and the kernel starts from the
        namespace snapshot taken before that cell (``MLNB_RESUME_FROM``)."""

        def __init__(self, nb_man: Any, resume: dict[str, Any], **kw: Any) -> None:
            super().__init__(nb_man, **kw)
            self.resume = resume

        def papermill_execute_cells(self) -> None:
            from nbclient.exceptions import CellExecutionError
            from nbformat import from_dict

            ran_cells = self.resume["partial"].get("cells", [])
            partial = {c.get("id"): c for c in ran_cells}
            start = next((i for i, c in enumerate(self.nb.cells) if c.get("id") == self.resume["cell_id"]), None)
            if start is None:  # a script: its notebook's cell ids are new each run; the source cell's position
                source = [i for i, c in enumerate(self.nb.cells)
                          if "injected-parameters" not in c.get("metadata", {}).get("tags", [])]
                at = self.resume.get("cell_index", -1)
                start = source[at] if 0 <= at < len(source) else 0
            for index, cell in enumerate(self.nb.cells):
                # the injected parameters run again, over the restored namespace: the same params (a resume
                # checks), but ``product`` and ``upstream`` where this run writes and reads (another worker's
                # copy of the project, on a cluster)
                injected = "injected-parameters" in cell.get("metadata", {}).get("tags", [])
                if index < start and injected:
                    ran = ran_cells[index] if index < len(ran_cells) else None
                    self.nb_man.cell_start(cell, index)
                    try:
                        self.execute_cell(cell, index)
                    finally:
                        self.nb_man.cell_complete(cell, cell_index=index)
                    cell["execution_count"] = (ran or {}).get("execution_count", cell.get("execution_count"))
                    continue
                if index < start:
                    self.nb_man.cell_start(cell, index)
                    # the same cell in the failed run: by id, else by position (the cells before the failing
                    # one are unchanged, the injected parameters cell at the same place)
                    ran = partial.get(cell.get("id")) or (ran_cells[index] if index < len(ran_cells) else None)
                    if cell.get("cell_type") == "code" and ran is not None:
                        cell["outputs"] = from_dict(ran.get("outputs", []))  # NotebookNodes, as nbclient's
                        cell["execution_count"] = ran.get("execution_count")
                    cell.setdefault("metadata", {})["mlnb"] = {"restored": True}  # not re-executed
                    self.nb_man.cell_complete(cell, cell_index=index)
                    continue
                try:
                    self.nb_man.cell_start(cell, index)
                    self.execute_cell(cell, index)
                except CellExecutionError as ex:
                    self.nb_man.cell_exception(self.nb.cells[index], cell_index=index, exception=ex)
                    break
                finally:
                    self.nb_man.cell_complete(self.nb.cells[index], cell_index=index)

    return ResumingClient
