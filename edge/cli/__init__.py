"""`hazwatch` subcommands of the edge package (see hazwatch.cli)."""
