import json
from pathlib import Path

from ploomber import DAG
from ploomber.products import File
from ploomber.tasks import PythonCallable


def load(product, rows):
    Path(str(product)).write_text(json.dumps(list(range(rows))))


def total(upstream, product):
    Path(str(product)).write_text(json.dumps({"total": sum(json.loads(Path(str(upstream["load"])).read_text()))}))


def make():
    dag = DAG()
    first = PythonCallable(load, File("out/data.json"), dag, name="load", params={"rows": 6})
    second = PythonCallable(total, File("out/total.json"), dag, name="total")
    first >> second
    return dag
