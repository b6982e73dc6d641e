"""Built-in converters from upstream dataset layouts to canonical samples (importing registers them)."""
