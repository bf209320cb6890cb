"""The generic REST adapter (entry point `rest`): a system behind an HTTP/JSON API, connected by YAML.

Modules, one job each: `config` (what the mapping says), `auth` (credentials per request),
`resilience` (time budget, back-off, token bucket, circuit breaker), `caller` (one resilient request),
`fetching` (profiles by key or in batches, pagination), `adapter` (the ports).
"""

from .adapter import RestAdapter
from .config import RestConfig

__all__ = ["RestAdapter", "RestConfig"]
