"""Inference api: strictly validated /predict served from the MLflow model registry."""
