"""`hazwatch` subcommands of the simulators package (see hazwatch.cli)."""
