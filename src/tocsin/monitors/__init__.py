"""Tocsin's own detectors: health checks, heartbeats, error-rate spikes."""
