# %% tags=["parameters"]
upstream = ["01-make"]
product = None

# %%
import json
from pathlib import Path

numbers = [int(line) for line in Path(upstream["01-make"]["data"]).read_text().split()]
print(sum(numbers))
Path(product["data"]).write_text(json.dumps({"total": sum(numbers)}))
