"""milters package."""
