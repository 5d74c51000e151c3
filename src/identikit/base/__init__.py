"""Base utilities every layer may use: errors, limits, atomic writes, safe reads, locks, figures.

Nothing here imports the rest of identikit.
"""
