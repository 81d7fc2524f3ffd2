"""optimizer: make code faster with LLM agents, and measure speed honestly.

This package holds the CLI and the orchestration. The layers below it are separate
top-level packages: ``sandbox`` (execution), ``profilers`` (measurement), ``agents``
(proposers), ``tasks`` (task format and suites) and ``kernels`` (GPU kernel tasks).
"""

__version__ = "0.1.0"
