"""Shared encounter schema, feature encoding, data loading and the model wrapper."""
