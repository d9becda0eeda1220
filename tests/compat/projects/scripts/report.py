# %% tags=["parameters"]
upstream = ["load"]
product = None

# %%
import json

data = json.load(open(upstream["load"]["data"]))
total = sum(row["sq"] for row in data)
print("total", total)
