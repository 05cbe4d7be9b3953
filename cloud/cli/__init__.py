"""`hazwatch` subcommands of the cloud package (see hazwatch.cli)."""
