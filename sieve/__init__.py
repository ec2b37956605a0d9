"""sieve package."""
