"""The classifier a search questions: it scores images, counts queries and differentiates."""
