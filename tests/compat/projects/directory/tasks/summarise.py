# %% tags=["parameters"]
upstream = ["load"]
product = {"nb": "out/summarise.ipynb", "data": "out/summary.json"}

# %%
import json

numbers = json.load(open(upstream["load"]["data"]))
summary = {"count": len(numbers), "total": sum(numbers)}
with open(product["data"], "w") as fh:
    json.dump(summary, fh)
summary
