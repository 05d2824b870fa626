"""The 10 reference architectures of each GPT space, frozen as keys (device embeddings and stored latency tables
depend on them, so they never change with the sampler).

Chosen as: the smallest and the largest architecture, then the first architectures of ``space.sample(200,
numpy.random.default_rng(0))`` until there are 3 with the smallest embedding, 3 with the middle one and 2 with the
largest, so the set spans the sizes that dominate latency.
"""

from __future__ import annotations

REFERENCE_KEYS: dict[str, tuple[str, ...]] = {
    "gpt-s": (
        "gpt-s-10-192-2-2-2-2-2-2-2-2-2-2-4-4-4-4-4-4-4-4-4-4-False",
        "gpt-s-12-768-4-4-4-4-4-4-4-4-4-4-4-4-12-12-12-12-12-12-12-12-12-12-12-12-True",
        "gpt-s-10-384-2-2-4-4-3-4-3-4-4-2-12-4-12-8-4-8-4-4-12-8-False",
        "gpt-s-12-768-3-4-3-2-4-3-2-3-4-4-3-3-4-8-8-8-12-4-8-4-12-12-4-12-True",
        "gpt-s-10-384-3-4-2-2-3-2-2-3-2-4-8-4-8-12-8-12-8-8-8-12-False",
        "gpt-s-11-384-4-3-4-4-4-2-4-4-4-2-4-12-4-12-12-12-8-4-12-12-4-8-False",
        "gpt-s-12-192-3-2-4-2-4-3-4-2-4-2-3-3-12-8-4-4-12-4-4-4-8-8-12-8-True",
        "gpt-s-11-768-4-4-4-2-2-2-4-3-3-2-4-12-8-8-12-4-8-4-12-8-12-4-False",
        "gpt-s-11-192-4-2-2-4-4-3-2-4-3-3-2-4-8-4-12-4-8-8-4-12-8-12-True",
        "gpt-s-12-192-2-3-3-2-3-2-2-4-3-3-3-3-8-4-8-12-12-8-4-4-4-12-8-12-True",
    ),
    "gpt-tiny": (
        "gpt-tiny-2-64-2-2-2-2-False",
        "gpt-tiny-4-128-4-4-4-4-4-4-4-4-True",
        "gpt-tiny-2-96-2-2-3-4-False",
        "gpt-tiny-4-64-2-4-2-4-3-2-3-2-True",
        "gpt-tiny-3-128-3-3-4-4-3-4-True",
        "gpt-tiny-3-128-2-3-4-3-3-2-True",
        "gpt-tiny-4-96-2-3-2-4-4-2-4-2-True",
        "gpt-tiny-3-64-4-2-2-2-2-3-False",
        "gpt-tiny-4-64-3-2-3-4-3-4-3-3-False",
        "gpt-tiny-2-96-4-2-4-2-True",
    ),
}
