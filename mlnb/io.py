"""Old import path of :mod:`mlnb.core.io`

Moved when the package was layered; kept for notebooks written before that."""

import sys
from importlib import import_module

sys.modules[__name__] = import_module("mlnb.core.io")
