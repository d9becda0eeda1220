from pathlib import Path

# + tags=["parameters"]
upstream = None
product = None
# -

Path(product["data"]).write_text("3\n-1\n")
