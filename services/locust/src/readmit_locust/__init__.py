"""Load tests for the readmit api (Locust), with the run's numbers exported to Prometheus."""
