"""gunicorn settings read from this directory (`gunicorn scimsync.wsgi`, and `make bench`).

An IdP looks a user up before every write with GET /Users?filter=userName eq "…".
A userName may hold 255 characters; a filter's value is a JSON string, which a
client may send \\u-escaped, and URL-encoded that is 16 bytes per character beyond
the Basic Multilingual Plane: a request line of some 4,100 bytes. gunicorn's
default limit (4,094) answers that with an HTML 414 no IdP reads as a SCIM error;
8,190 is the highest limit gunicorn takes short of none. Longer filters go to
POST /.search (RFC 7644 §3.4.3). tests/scim/test_gunicorn_server.py pins this.
"""

limit_request_line = 8190
