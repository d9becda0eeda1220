# %% tags=["parameters"]
upstream = None
product = None
word = "hello"
times = 1

# %%
from pathlib import Path

text = " ".join([word] * times)
print(text)
Path(product["text"]).write_text(text)
