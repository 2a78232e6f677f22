"""A deterministic traffic simulator for the local world (``tokenwatch simulate``)."""
