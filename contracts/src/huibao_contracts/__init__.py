"""Huibao contracts: the one source of truth shared by every service and by integrators.

Everything here is a value or a pure function: no I/O, no clocks read implicitly.
"""
