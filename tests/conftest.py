"""Test-wide settings: CPU only, float32 matmul precision, deterministic hypothesis profile,
a compilation cache, and a counter of JAX compilations."""

import contextlib
import os

os.environ.setdefault("JAX_PLATFORMS", "cpu")
# Tolerances against references assume float32 matmuls. On CPU that is the only kind; a GPU's
# default is TF32 (10 mantissa bits), so the suite asks for full precision explicitly, here
# and (through the environment) in the subprocesses it starts.
os.environ.setdefault("JAX_DEFAULT_MATMUL_PRECISION", "highest")
# XLA:CPU compile time dominates this suite (tiny models, many shapes, many programs). LLVM
# optimization level 0 compiles about 40% faster and leaves results unchanged (XLA:CPU does
# no fast-math either way); XLA:CPU's older elemental emitters, instead of its fusion
# emitters, take off about a third of what is left. The subprocesses the tests start inherit
# both. BUILD_NOTES.md, "Tests and CI time".
for flag in ("--xla_backend_optimization_level=0", "--xla_cpu_use_fusion_emitters=false"):
    if flag not in os.environ.get("XLA_FLAGS", ""):
        os.environ["XLA_FLAGS"] = f"{os.environ.get('XLA_FLAGS', '')} {flag}".strip()

import jax  # noqa: E402
import pytest  # noqa: E402
from hypothesis import HealthCheck, settings  # noqa: E402
from jax.experimental.compilation_cache import compilation_cache  # noqa: E402

settings.register_profile(
    "attnlab",
    max_examples=10,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
settings.load_profile("attnlab")

# The slowest modules, slowest first (`make test`'s --durations, 2-core CI): run them first and
# the short ones after, so that the two xdist workers finish together. `make test` keeps this
# order (--no-loadscope-reorder); xdist's own order, most tests first, put these last, and a
# worker ran one of them alone at the end.
SLOWEST_FIRST = (
    "tests/analysis/test_at_vs_nat_frontier.py",
    "tests/analysis/test_at_vs_nat.py",
    "tests/slurm/test_slurm_sweep.py",
    "tests/slurm/test_srun_train.py",
    "tests/train/test_multiprocess.py",
    "tests/train/test_recipes_cli.py",
    "tests/train/test_first_hour.py",
    "tests/train/test_cli.py",
    "tests/benchmarks/test_bench_decoding.py",
    "tests/sweeps/test_resume.py",
    "tests/train/test_fsdp.py",
    "tests/benchmarks/test_gpu_check.py",
)


def pytest_collection_modifyitems(items):
    """Modules of SLOWEST_FIRST first, in its order; the rest keep their order."""
    rank = {path: i for i, path in enumerate(SLOWEST_FIRST)}
    items.sort(key=lambda item: rank.get(item.nodeid.split("::")[0], len(rank)))


@pytest.fixture(scope="session")
def compilation_cache_dir(tmp_path_factory):
    """JAX's persistent compilation cache for the rest of the session, and its subprocesses.

    For tests that compile the same programs many times (``tests/train`` uses it for every
    test). It changes no result: a cache hit runs the executable a fresh compile would have
    produced. A cache the environment already names (``JAX_COMPILATION_CACHE_DIR``) is kept.
    """
    if os.environ.get("JAX_COMPILATION_CACHE_DIR"):
        yield os.environ["JAX_COMPILATION_CACHE_DIR"]
        return
    path = str(tmp_path_factory.mktemp("jax_cache"))
    before = (
        jax.config.jax_compilation_cache_dir,
        jax.config.jax_persistent_cache_min_compile_time_secs,
    )
    compilation_cache.set_cache_dir(path)
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.2)
    compilation_cache.reset_cache()  # takes effect even if something compiled before
    env = {"JAX_COMPILATION_CACHE_DIR": path, "JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS": "0.2"}
    os.environ.update(env)  # subprocesses share it
    yield path
    for key in env:
        os.environ.pop(key, None)
    compilation_cache.set_cache_dir(before[0])
    jax.config.update("jax_persistent_cache_min_compile_time_secs", before[1])
    compilation_cache.reset_cache()


@contextlib.contextmanager
def _compilation_events():
    events: list[str] = []

    def listener(event: str, duration: float, **kwargs) -> None:
        if event.startswith("/jax/core/compile/"):  # tracing, lowering, compiling
            events.append(event)

    jax.monitoring.register_event_duration_secs_listener(listener)
    try:
        yield events
    finally:
        jax.monitoring.unregister_event_duration_listener(listener)


@pytest.fixture
def compilations():
    """``with compilations() as events:`` lists the JAX compilation events of the block.

    Tracing is counted too, so a program found in the persistent cache still counts.
    """
    return _compilation_events
