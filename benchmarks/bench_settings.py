"""The application's settings, plus the benchmark's reference view in the URLconf.

Same middleware, same database settings, same everything: only ROOT_URLCONF
differs, so the reference view pays exactly the framework cost a SCIM request pays.
"""

from scimsync.settings import *  # noqa: F403

ROOT_URLCONF = "benchmarks.bench_urls"
