"""One small view per operation, grouped by resource. Each names the model permissions it needs
(`required_perms`, checked by scimsync.api.permissions.AdminPermissions)."""
