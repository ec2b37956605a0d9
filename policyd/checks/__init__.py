"""policyd/checks package."""
