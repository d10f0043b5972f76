"""Settings for bench/exchange_lookup.py's gunicorn: production settings plus one extra URL.

The extra URL (``exchange_urls``) serves the same registry lookup with no key, grant,
purpose, item or rate check and no audit: the baseline the full gateway path is compared
with. It exists only under these settings, never in yiwang's own URLconf.
"""

from yiwang.settings import *  # noqa: F403

ROOT_URLCONF = "exchange_urls"
# The baseline takes the gateway's short path through Django too (yiwang.exchange.middleware).
YIWANG_EXCHANGE_GATEWAY_PATHS = [*YIWANG_EXCHANGE_GATEWAY_PATHS, "/bench/raw/"]  # noqa: F405
