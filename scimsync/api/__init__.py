"""The management REST API under /api/v1/: what the admin pages do, for scripts and automation.

Views only translate between JSON and the services the admin and the SCIM
surface call (scimsync.sync.services, scimsync.sync.runs, mappings.services),
so an edit through the API is flagged and journaled exactly like one in the admin.
"""
