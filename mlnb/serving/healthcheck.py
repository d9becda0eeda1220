"""The serving image's ``HEALTHCHECK``: exit 0 when ``GET /ready`` on this container's port answers 200.

Standard library only (it runs every 30 s): ``python -m mlnb.serving.healthcheck``; the port comes from
``MLNB_SERVE_PORT`` (default 8080), as for ``mlnb serve``.
"""

from __future__ import annotations

import sys
import urllib.error
import urllib.request

from mlnb.core import settings


def main() -> int:
    port = settings.get("MLNB_SERVE_PORT")
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/ready", timeout=4) as resp:
            return 0 if resp.status == 200 else 1
    except (urllib.error.URLError, OSError) as exc:
        print(f"mlnb serve on port {port} is not ready: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
