"""Enforcement in the request path: OpenAI-compatible proxy, policy, actions, audit, replay (see docs/gateway.md)."""
