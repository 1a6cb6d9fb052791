"""`make bench`: the SCIM endpoints over HTTP, gunicorn on PostgreSQL, against a bare Django view.

Run with `.venv/bin/python -m benchmarks` (see docs/benchmarks.md). Nothing here
is imported by the application; the package only adds a URLconf and a settings
module that the benchmark's own gunicorn loads.
"""
