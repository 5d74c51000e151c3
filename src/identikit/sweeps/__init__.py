"""Sweeps: many runs per class on one model, saved, resumed and compared; their file formats."""
