"""Pure domain code: no I/O, plain functions and frozen dataclasses."""
