"""The fast execution path of ``mlnb build``: forked, pre-warmed kernels behind papermill.

* :mod:`mlnb.engine.forkserver` is the warm process (the "zygote"): it imports ipykernel and
  the heavy modules the pipeline's notebooks import, once, and forks one fresh kernel process
  per task ahead of time (a pool), so a task starts on an initialised kernel.
* :mod:`mlnb.engine.kernel` is the client side: a jupyter_client provisioner that claims a pool
  kernel instead of spawning ``python -m ipykernel_launcher``; :mod:`mlnb.engine.papermill_engine`
  is the papermill engine ``mlnb`` that uses it (a ``papermill.engine`` entry point). Everything
  else (cells, outputs, errors, timeouts, the saved notebook) is papermill's and nbclient's own
  code, so executed notebooks match the stock path's.
* :mod:`mlnb.engine.imports` finds, statically, what the notebooks import.
"""
