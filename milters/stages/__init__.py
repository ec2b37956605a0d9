"""milters/stages package."""
