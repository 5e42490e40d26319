"""Scarf: the API client, bounded HTTP, retries, and the imports a sync runs."""
