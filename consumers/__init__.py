"""The explorer's consumers: a pure core and two shells, SyncConsumer and AsyncConsumer, of the same shape."""
