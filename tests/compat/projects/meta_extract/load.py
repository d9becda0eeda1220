# %% tags=["parameters"]
product = {"nb": "out/load.ipynb", "data": "out/rows.json"}

# %%
import json

with open(product["data"], "w") as fh:
    json.dump([1, 2, 3], fh)
