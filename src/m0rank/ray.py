"""Ray Serve application: ``serve run m0rank.ray:app model=... replicas=...``.

Each replica loads one :class:`~m0rank.api.Reranker` and serves the very FastAPI app that
``m0rank serve`` serves, built by :func:`m0rank.server.app.create_app` inside the replica
(Serve's late-bound ingress, ``__serve_build_asgi_app__``), so routes, schemas, API keys and
limits are the same, and the app's lifespan (batcher start, warm-up, drain) runs per replica.
Dynamic batching is the server's own batcher driving the engine; Serve adds replicas and
autoscaling in front of it.

Builder arguments (``key=value`` after the import path, or ``args:`` in a Serve config file):

    model               checkpoint folder, hub id or built-in name (default: the offline model)
    replicas            fixed number of replicas (default 1); ignored with min/max_replicas
    min_replicas, max_replicas, target_ongoing_requests   Serve autoscaling
    num_cpus, num_gpus  resources per replica (default 1 CPU, 0 GPU; fractions allowed)
    device, dtype, max_batch_tokens, max_batch_size      as for ``m0rank serve``

Operator settings (keys, limits, image fetching) come from the ``M0RANK_*`` variables, as for
``m0rank serve`` (set them in the Ray ``runtime_env``).
"""

from __future__ import annotations

import logging
from typing import Any

from m0rank.errors import InvalidInputError

__all__ = ["app", "M0RankReplica", "build_app"]

logger = logging.getLogger(__name__)

_MODEL_KEYS = ("device", "dtype")
_INT_MODEL_KEYS = ("max_batch_tokens", "max_batch_size")
_KNOWN = {"model", "replicas", "min_replicas", "max_replicas", "target_ongoing_requests",
          "num_cpus", "num_gpus", *_MODEL_KEYS, *_INT_MODEL_KEYS}


class M0RankReplica:
    """One Serve replica: a loaded Reranker behind ``create_app``'s FastAPI app."""

    def __init__(self, model: str | None, model_kwargs: dict[str, Any]) -> None:
        from m0rank.api import Reranker
        from m0rank.server.settings import ServerSettings

        # Serve's own replicas replace m0rank's: one model per Serve replica, in process
        self._settings = ServerSettings.from_env().with_overrides(model=model, replicas=1,
                                                                 devices=())
        # model options: M0RANK_* (device, dtype, pixels, batch...) with the app's args on top
        self._reranker = Reranker.from_pretrained(
            self._settings.model, **{**self._settings.load_kwargs(), **model_kwargs})

    def __serve_build_asgi_app__(self) -> Any:  # noqa: N807 - Serve's late-bound ingress hook
        from m0rank.server.app import create_app

        return create_app(self._settings, self._reranker)


def build_app(args: dict[str, Any]) -> Any:
    """The Serve application for ``args`` (strings from the command line are converted).

    Raises:
        InvalidInputError: An unknown argument or a value of the wrong kind.
    """
    from ray import serve

    unknown = sorted(set(args) - _KNOWN)
    if unknown:
        raise InvalidInputError(f"unknown m0rank.ray:app argument(s) {unknown}; known: "
                                f"{sorted(_KNOWN)}")
    model_kwargs: dict[str, Any] = {k: args[k] for k in _MODEL_KEYS if args.get(k) is not None}
    model_kwargs.update({k: _number(args, k, int) for k in _INT_MODEL_KEYS if k in args})
    options: dict[str, Any] = {
        "name": "m0rank",
        "ray_actor_options": {"num_cpus": _number(args, "num_cpus", float, 1.0),
                              "num_gpus": _number(args, "num_gpus", float, 0.0)},
    }
    if "min_replicas" in args or "max_replicas" in args:
        options["autoscaling_config"] = {
            "min_replicas": _number(args, "min_replicas", int, 1),
            "max_replicas": _number(args, "max_replicas", int, 1),
            "target_ongoing_requests": _number(args, "target_ongoing_requests", float, 4.0),
        }
    else:
        options["num_replicas"] = _number(args, "replicas", int, 1)
    deployment = serve.deployment(serve.ingress()(M0RankReplica), **options)
    return deployment.bind(args.get("model"), model_kwargs)


def app(args: dict[str, Any]) -> Any:
    """Application builder named by ``serve run m0rank.ray:app model=... replicas=...``."""
    return build_app(args)


def _number(args: dict[str, Any], key: str, kind: type, default: Any = None) -> Any:
    value = args.get(key, default)
    try:
        return kind(value)
    except (TypeError, ValueError):
        raise InvalidInputError(f"m0rank.ray:app argument {key} must be a number, got "
                                f"{value!r}") from None
