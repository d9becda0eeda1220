# %% tags=["parameters"]
upstream = None
product = "out/report.ipynb"

# %%
import json

print(json.load(open(upstream["load"]["data"])), json.load(open(upstream["double"]["data"])))
