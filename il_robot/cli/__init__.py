"""The `il-robot` command: one entry point, a subcommand per job."""
