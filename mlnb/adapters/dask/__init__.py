"""Dask (``distributed``): the only package that imports it."""
