"""Defaults and bounds shared by the server's modules.

They live apart so that the protocol parser, the batcher, the HTTP layer and the CLI
agree on one value each (a body limit or a timeout that differs between two modules
would be a silent bug), and so the safety bounds can be read in one place.
"""

from __future__ import annotations

from pathlib import Path

DEFAULT_HOST = "127.0.0.1"
DEFAULT_CACHE_DIR = Path(".medvlm-cache")
DEFAULT_MAX_TOKENS = 256
MAX_TOKENS_LIMIT = 8192
MAX_BODY_BYTES = 32 << 20  # a base64 PNG of a large scan fits easily
MAX_CONNECTIONS = 128
REQUEST_TIMEOUT_S = 600.0  # longest wait for the model to answer one request
IDLE_TIMEOUT_S = 30.0  # a kept-alive connection with no request is closed after this
MAX_BATCH = 16
