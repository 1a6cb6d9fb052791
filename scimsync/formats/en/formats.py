"""Dates and times in the admin's lists and read-only fields as everywhere else in the
product: "2026-12-04 05:31 UTC" (scimsync.display.show_time), not "Dec. 4, 2026, 5:31 a.m."."""

DATETIME_FORMAT = "Y-m-d H:i T"
SHORT_DATETIME_FORMAT = "Y-m-d H:i T"
DATE_FORMAT = "Y-m-d"
SHORT_DATE_FORMAT = "Y-m-d"
