# %% tags=["parameters"]
upstream = ["export"]
product = None

# %%
import csv
import json

with open(upstream["export"]) as fh:
    total = sum(int(row["sq"]) for row in csv.DictReader(fh))
print("total", total)

# %%
with open(product["total"], "w") as fh:
    json.dump({"total": total}, fh)
