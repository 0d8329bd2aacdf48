"""Real clients against a real `tocsin serve`: Prometheus, Alertmanager, a PagerDuty library, kill -9."""
