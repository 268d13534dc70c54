"""Use cases: intake of events and changes of the org-unit registry, over the adapters."""
