"""Frontends: a source model in, an ir.Graph of Ember ops out (docs/converter.md)."""
