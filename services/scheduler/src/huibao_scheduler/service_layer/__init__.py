"""The use cases: run the cycles' steps, gather and issue their effects (ports in `ports`)."""
