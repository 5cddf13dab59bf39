"""What a set of weights was trained for, so that loading them elsewhere fails clearly (internal)."""

from __future__ import annotations

import hashlib

import torch

from ddiff.graphs import Graph

# Graphs up to this many states are fingerprinted by their rate matrix (cheap: S x S float64).
_FINGERPRINT_LIMIT = 1024


def graph_signature(graph: Graph) -> dict[str, str | int]:
    """Type, alphabet sizes and (for small S) a hash of the rate matrix rounded to 1e-9."""
    sig: dict[str, str | int] = {
        "type": type(graph).__name__,
        "num_tokens": graph.num_tokens,
        "num_states": graph.num_states,
    }
    if graph.num_states <= _FINGERPRINT_LIMIT:
        q = torch.round(graph.rate_matrix(torch.float64) * 1e9).to(torch.int64)
        sig["rate_matrix_sha256"] = hashlib.sha256(q.numpy().tobytes()).hexdigest()[:16]
    return sig


def check_same_graph(saved: dict[str, str | int], graph: Graph, what: str) -> None:
    """Raise `ValueError` naming both graphs unless `saved` is `graph_signature(graph)`."""
    current = graph_signature(graph)
    if saved == current:
        return
    raise ValueError(
        f"{what} was trained for {_describe(saved)}, but the model here is built for "
        f"{_describe(current)}; build the model from the configuration the weights were "
        "saved with (its config.json)"
    )


def _describe(sig: dict[str, str | int]) -> str:
    text = f"{sig.get('type')} with {sig.get('num_tokens')} data tokens ({sig.get('num_states')} states)"
    if "rate_matrix_sha256" in sig:
        text += f", rate matrix {sig['rate_matrix_sha256']}"
    return text
