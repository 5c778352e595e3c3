"""What the API and the CLI both do, written once."""
