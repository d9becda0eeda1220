# %% tags=["parameters"]
upstream = None
product = None
rows = 3

# %%
import json

data = [{"i": i, "sq": i * i} for i in range(rows)]
with open(product["data"], "w") as fh:
    json.dump(data, fh)
len(data)
