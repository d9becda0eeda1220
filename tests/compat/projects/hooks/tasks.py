import json
import os
from pathlib import Path


def total(upstream, product):
    if os.environ.get("COMPAT_FAIL_TOTAL"):  # the hooks_failure build: the same project, this task fails
        raise ValueError(f"no total of {upstream['load']['data']} today")
    lines = Path(upstream["load"]["data"]).read_text().splitlines()[1:]
    Path(product).write_text(json.dumps({"total": sum(int(line.split(",")[1]) for line in lines)}))
