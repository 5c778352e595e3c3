"""The task engine: follows every accepted task to its end and settles it once."""
