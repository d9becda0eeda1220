# %% tags=["parameters"]
upstream = None
product = None
rows = 2

# %%
lines = ["i,sq"] + [f"{i},{i * i}" for i in range(rows)]
print(len(lines) - 1, "rows")
with open(product["data"], "w") as f:
    f.write("\n".join(lines) + "\n")
