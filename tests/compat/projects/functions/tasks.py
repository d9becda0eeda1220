import json
from pathlib import Path


def get(product, rows):
    Path(product).write_text(json.dumps([{"i": i, "sq": i * i} for i in range(rows)]))


def split(upstream, product):
    data = json.loads(Path(upstream["get"]).read_text())
    folder = Path(product)
    folder.mkdir(parents=True, exist_ok=True)
    for row in data:
        (folder / f"row-{row['i']}.json").write_text(json.dumps(row))


def count(upstream, product):
    files = sorted(Path(upstream["split"]).glob("*.json"))
    Path(product).write_text(json.dumps({"files": len(files)}))
