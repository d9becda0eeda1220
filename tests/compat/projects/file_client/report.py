# %% tags=["parameters"]
upstream = ["get"]
product = None

# %%
import json
from pathlib import Path

data = json.loads(Path(upstream["get"]).read_text())
total = sum(row["sq"] for row in data)
print(f"total {total}")

# %%
Path(product["summary"]).write_text(f"{len(data)} rows, total {total}\n")
