# %% tags=["parameters"]
upstream = None
product = {"nb": "out/load.ipynb", "data": "out/numbers.json"}

# %%
import json

numbers = [n * 3 for n in range(5)]
with open(product["data"], "w") as fh:
    json.dump(numbers, fh)
numbers
