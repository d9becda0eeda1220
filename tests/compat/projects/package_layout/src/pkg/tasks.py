import json
from pathlib import Path


def load(product, rows):
    Path(product).write_text(json.dumps(list(range(rows))))


def total(upstream, product):
    Path(product).write_text(json.dumps({"total": sum(json.loads(Path(upstream["load"]).read_text()))}))
