"""gridalarm: shared contracts (schemas, config) and the CLI, the composition root."""
