# %% tags=["parameters"]
upstream = ["use"]

# %%
print(open(upstream["use"]["data"]).read())
