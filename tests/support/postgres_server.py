"""Placeholder: filled in by the Foundation work."""
