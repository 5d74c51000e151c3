"""Showing results: figures (PNG bytes) and, later, the HTML page."""
