"""Training and evaluating the registry's models."""
