"""The write benchmark (`make bench`): destination-scarf vs the CDK's own input parsing vs a raw orjson loop."""
