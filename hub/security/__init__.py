"""Authentication and authorization: API keys, JWTs from the company's identity provider, scopes."""
