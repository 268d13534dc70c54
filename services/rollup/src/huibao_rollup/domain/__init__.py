"""The rollup arithmetic: pure Python, no I/O."""
