"""Trainer: builds the readmission model from the real data and registers it in MLflow."""
