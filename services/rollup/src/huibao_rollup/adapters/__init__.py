"""PostgreSQL and Kafka adapters of the rollup."""
