"""Outgoing webhooks: Standard Webhooks signing and the pure retry schedule."""
