"""The HTTP API: routes, authentication, error mapping and OpenAPI."""
