"""Simulators of the field (Modbus devices, GNSS vehicles, AIS vessels) and the embedded demo."""
