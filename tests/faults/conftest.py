from __future__ import annotations

import logging

# The load generators make thousands of requests; httpx logs each one at INFO.
logging.getLogger("httpx").setLevel(logging.WARNING)
