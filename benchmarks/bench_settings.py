"""The application's settings, plus the benchmark's reference view in the URLconf.

Same middleware, same database settings, same everything: only ROOT_URLCONF
differs. The reference view lives outside /scim/, so it runs the whole middleware
stack, as any page of a Django project does; SCIM requests skip the browser
middleware (sessions, CSRF, the logged-in user, messages: scimsync/middleware.py),
which docs/benchmarks.md counts separately.
"""

from scimsync.settings import *  # noqa: F403

ROOT_URLCONF = "benchmarks.bench_urls"
