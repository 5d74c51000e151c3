"""Studies that read a model or a sweep: certainty, the achievable ceiling, and judges."""
