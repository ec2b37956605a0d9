"""sieve/extensions package."""
