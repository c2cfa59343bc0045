"""Calling the service from Python: the clients of its API, and the reward functions RL trainers plug in.

- :mod:`serve_app.client.http`: :class:`GenRMClient` and :class:`AsyncGenRMClient` (every route of the project's
  API, typed with its own request and response models);
- :mod:`serve_app.client.rollouts`: reading a trainer's prompts and completions, finding a batch's groups;
- :mod:`serve_app.client.trl`, :mod:`serve_app.client.verl`, :mod:`serve_app.client.areal`: each trainer's reward
  function, in the signature that trainer calls.

Importing this package needs only httpx, pydantic, numpy and scipy: no Ray, vLLM, torch or FastAPI.
"""

from serve_app.client.http import (
    DEFAULT_TIMEOUT_S,
    TOKEN_ENV,
    AsyncGenRMClient,
    GenRMClient,
    ServiceError,
    ServiceRefused,
)

__all__ = [
    "DEFAULT_TIMEOUT_S",
    "TOKEN_ENV",
    "AsyncGenRMClient",
    "GenRMClient",
    "ServiceError",
    "ServiceRefused",
]
