"""Generic adapters: systems connected by configuration in the mapping alone, without code.

Each sub-package is one adapter with an entry point of its own; `rest` (`hub_adapters.generic.rest`)
reads profiles from, and sends events to, an HTTP/JSON API described in `mappings/hub.yaml`.
"""
