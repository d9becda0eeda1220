# %% tags=["parameters"]
upstream = None
product = {"nb": "out/double.ipynb", "data": "out/doubled.json"}

# %%
import json

rows = json.load(open(upstream["load"]["data"]))
with open(product["data"], "w") as fh:
    json.dump([2 * r for r in rows], fh)
