"""The rollup's use cases: applying events and tree changes, answering queries."""
