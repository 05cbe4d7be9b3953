"""Async acquisition sources (Modbus, GNSS, AIS) feeding a pipeline Sink."""
