"""sieve/delivery package."""
