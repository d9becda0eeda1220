def total(upstream, product):
    raise ValueError(f"no total of {upstream['load']['data']} today")
