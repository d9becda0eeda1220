from pathlib import Path

LOG = Path("out/hooks.log")


def _note(line):
    LOG.parent.mkdir(parents=True, exist_ok=True)
    with LOG.open("a") as fh:
        fh.write(line + "\n")


def dag_rendered():
    _note("dag rendered")


def dag_finished():
    _note("dag finished")


def task_rendered(task):
    _note(f"{task.name} rendered")


def task_finished(task):
    _note(f"{task.name} finished")
