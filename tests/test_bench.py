"""experiments.bench's helpers that are not measurements (the measurements are benchmarks, run
by hand: docs/performance.md)."""

from __future__ import annotations

import shutil
import warnings

import jax
import jax.numpy as jnp

from experiments import bench


def test_the_cli_measurements_compilation_cache_is_its_blocks_alone(tmp_path):
    """`--cli` times runs whose programs a private cache serves; after the block the process's
    own cache settings hold again, and nothing is written to the private folder, which its
    caller deletes (JAX kept writing there, a warning per program, until the cache was reset)."""
    names = ("jax_compilation_cache_dir", "jax_persistent_cache_min_compile_time_secs")
    before = {name: getattr(jax.config, name) for name in names}
    folder = tmp_path / "jax"
    with bench.compilation_cache_in(folder):
        assert jax.config.jax_compilation_cache_dir == str(folder)
        jax.jit(lambda x: x * 3.0 + 1.0)(jnp.arange(7.0)).block_until_ready()
    assert any(folder.iterdir())  # the block's program went there
    shutil.rmtree(folder)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # "Error writing persistent compilation cache entry"
        jax.jit(lambda x: x * 5.0 - 2.0)(jnp.arange(7.0)).block_until_ready()
    assert not folder.exists()
    assert {name: getattr(jax.config, name) for name in names} == before
