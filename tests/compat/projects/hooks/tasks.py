import json
from pathlib import Path


def total(upstream, product):
    lines = Path(upstream["load"]["data"]).read_text().splitlines()[1:]
    Path(product).write_text(json.dumps({"total": sum(int(line.split(",")[1]) for line in lines)}))
