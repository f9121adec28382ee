"""The production topology (ops/serve.py) as the proxy scenario serves it, one per process:

    python -m bench.topology project     # the app, as `make serve` runs it
    python -m bench.topology floor       # bench/floor.py's bare view behind the same nginx and gunicorn

Both get the same nginx configuration, TLS, gunicorn command and worker count; only the WSGI
application differs. Neither runs the offline sweep: the dataset's devices last reported when it
was made, so the first sweep would mark them offline and invalidate the cached stats mid-run.
"""

from __future__ import annotations

import sys
from dataclasses import replace

from bench.servers import FLOOR_ASGI, FLOOR_WSGI
from ops import serve


def main(argv: list[str]) -> int:
    if argv not in (["project"], ["floor"]):
        print("usage: python -m bench.topology project|floor", file=sys.stderr)
        return 2
    config = replace(serve.load_config(), sweep=False)
    if argv == ["floor"]:
        config = replace(config, wsgi_app=FLOOR_WSGI, asgi_app=FLOOR_ASGI)
    return serve.run(config)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
