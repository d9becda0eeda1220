# %% tags=["parameters"]
upstream = None
product = None

# %%
from pathlib import Path

Path(product["data"]).write_text("\n".join(str(i) for i in range(1, 6)))
