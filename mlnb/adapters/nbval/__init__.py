"""nbval regression checks: blessed reference notebooks, the workspace they run in, and the
comparison (``mlnb nbval check|bless``, ``pytest --nbval tests/nbval``)."""
