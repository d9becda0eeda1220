"""The serving image's ``HEALTHCHECK``: exit 0 when ``GET /ready`` on this container's port answers 200.

Standard library only (it runs every 30 s): ``python -m mlnb.serving.healthcheck``; the port comes from
``MLNB_SERVE_PORT`` (default 8080), as for ``mlnb serve``.
"""

from __future__ import annotations

import os
import sys
import urllib.error
import urllib.request


def main() -> int:
    port = os.environ.get("MLNB_SERVE_PORT", "8080")
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/ready", timeout=4) as resp:
            return 0 if resp.status == 200 else 1
    except (urllib.error.URLError, OSError) as exc:
        print(f"mlnb serve on port {port} is not ready: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
