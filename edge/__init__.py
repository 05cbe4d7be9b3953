"""Edge agent: Modbus, GNSS and AIS sources, local alarms, the durable buffer, the MQTT forwarder."""
