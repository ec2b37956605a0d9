"""policyd package."""
