"""Accounts: the tenants of a Shoal cluster, their keys and quotas, and who is asking (principals)."""
