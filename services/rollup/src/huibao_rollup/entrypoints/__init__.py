"""The rollup's entrypoints: the HTTP query API and the Kafka consumer loops."""
