"""Pure decoders: bytes/registers/sentences in, values out; no I/O, no clock."""
