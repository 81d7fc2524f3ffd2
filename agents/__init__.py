"""Proposers: agents that take a task plus feedback and propose candidate patches."""
