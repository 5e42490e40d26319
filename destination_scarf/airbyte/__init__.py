"""The Airbyte edge: the command line and every command, the CDK adapter, protocol I/O, TRACE, secrets, signals."""
