# + tags=["parameters"]
upstream = ["make"]
product = None

# -


# +
def positive(text):
    values = [int(v) for v in text.split()]
    bad = [v for v in values if v < 0]
    if bad:
        raise ValueError(f"negative values: {bad}")
    return values


# +
with open(upstream["make"]["data"]) as fh:
    text = fh.read()

# +
positive(text)
