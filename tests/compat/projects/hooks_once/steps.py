from pathlib import Path


def make(product):
    Path(product).write_text("made")
