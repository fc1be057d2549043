"""Compiled programs reused across processes without tracing them again.

JAX's persistent compilation cache (``JAX_COMPILATION_CACHE_DIR``; the CLI's
``METABO_JAX_CACHE``) saves XLA's work, but every new process still traces the Python function
and lowers it to find its entry: for the BO core's box suggestion that is most of a warm-cache
``metabo suggest``. ``persistent_jit`` is ``jax.jit`` that also keeps the compiled executable
(``jax.experimental.serialize_executable``) in a ``metabo-aot`` folder of that same cache
directory, under a key computed from the arguments without tracing:

  - the function (module and name) and a digest of metabo's source files: any change to the
    library's code makes new entries;
  - JAX's and jaxlib's versions, the backend (platform version, device kind), the CPU model
    and ``XLA_FLAGS``;
  - the values of the static arguments (their ``repr``), the pytree structure and the abstract
    values (shape, dtype, weak type) of the others, and JAX's trace context (x64 among it).

A later process loads the executable and calls it directly. Without a cache directory (or with
``METABO_AOT=0``), under ``jax.disable_jit``, and when called from inside a trace, the function
is plain ``jax.jit``. A program that cannot be serialized is compiled once per process, as
``jax.jit`` would, and not kept; an entry that fails to load is rebuilt; entries are written to a temporary file and renamed,
so concurrent processes never read half of one. Loading runs code from the cache directory, as
JAX's own cache does: it must be writable by the user only.

Two jaxlib 0.10 quirks shape the code: an executable that JAX itself loaded from its cache does
not serialize back correctly (running the copy fails: "Function ... not found"), so an
executable that JAX's cache supplied on a miss is used but not kept (JAX's switch to turn its
cache off is read once per process: it cannot be turned off for one compilation). That entry is
then made by a process whose JAX cache misses too (a new cache directory, or an entry JAX has
evicted); until then such a process traces as before. And a loaded executable that calls
LAPACK needs jaxlib's LAPACK kernels initialized first (lowering does that, loading does not;
without it the call crashes the process).
"""

from __future__ import annotations

import functools
import hashlib
import inspect
import os
import pickle
import threading
from pathlib import Path

FOLDER = "metabo-aot"
# Set to "0" to trace and look up JAX's cache in every process, as plain jax.jit does.
ENV = "METABO_AOT"


def persistent_jit(fn=None, *, static_argnames=()):
    """``jax.jit(fn, static_argnames=...)`` whose compiled executables are reused by later
    processes (module docstring). The result also has ``jax.jit``'s attributes (``lower``,
    ``trace``, ...) through ``.jitted``."""
    if fn is None:
        return functools.partial(persistent_jit, static_argnames=static_argnames)
    return Persistent(fn, tuple(static_argnames))


class Persistent:
    """A jitted function with executables kept across processes; see ``persistent_jit``."""

    def __init__(self, fn, static_argnames: tuple[str, ...]):
        import jax

        self.jitted = jax.jit(fn, static_argnames=static_argnames)
        self._name = f"{fn.__module__}.{fn.__qualname__}"
        self._parameters = list(inspect.signature(fn).parameters)
        self._static = frozenset(static_argnames)
        self._loaded: dict = {}
        self._lock = threading.Lock()
        functools.update_wrapper(self, fn)

    def __getattr__(self, name):
        return getattr(self.__dict__["jitted"], name)

    def __call__(self, *args, **kwargs):
        directory = _directory()
        if directory is None:
            return self.jitted(*args, **kwargs)
        import jax
        from jax._src import config as jax_config

        static, dynamic_args, dynamic_kwargs = {}, [], {}
        # Positional arguments fill the first parameters; the rest come by keyword or default.
        for name, value in zip(self._parameters, args, strict=False):
            if name in self._static:
                static[name] = value
            else:
                dynamic_args.append(value)
        for name, value in kwargs.items():
            if name in self._static:
                static[name] = value
            else:
                dynamic_kwargs[name] = value
        leaves, tree = jax.tree.flatten((tuple(dynamic_args), dynamic_kwargs))
        if any(isinstance(leaf, jax.core.Tracer) for leaf in leaves):
            return self.jitted(*args, **kwargs)  # inside another trace: inlined as jax.jit is
        key = (tuple(sorted(static.items())), tree, tuple(jax.typeof(leaf) for leaf in leaves), jax_config.trace_context())
        compiled = self._loaded.get(key)
        if compiled is None:
            with self._lock:
                compiled = self._loaded.get(key)
                if compiled is None:
                    compiled = self._load_or_compile(directory, key, args, kwargs)
                    self._loaded[key] = compiled
        return compiled(*dynamic_args, **dynamic_kwargs)

    def _load_or_compile(self, directory: str, key, args, kwargs):
        from jax.experimental import serialize_executable

        static, tree, avals, context = key
        described = repr((self._name, [(n, repr(v)) for n, v in static], str(tree), [str(a) for a in avals], _context(context)))
        digest = hashlib.sha256(f"{_environment_digest()}\n{described}".encode()).hexdigest()[:40]
        path = Path(directory) / FOLDER / f"{self._name.rsplit('.', 1)[-1]}-{digest}"
        try:
            with open(path, "rb") as fh:
                payload, in_tree, out_tree = pickle.load(fh)
            _initialize_lapack()
            return serialize_executable.deserialize_and_load(payload, in_tree, out_tree)
        except Exception:  # noqa: BLE001 - none yet, or a damaged one: build it (again)
            pass
        lowered = self.jitted.lower(*args, **kwargs)
        hits = _jax_cache_hits()
        compiled = lowered.compile()
        if _jax_cache_hits() != hits:
            # JAX loaded it from its own cache: such an executable does not serialize back
            # correctly (module docstring). Used by this process, not kept.
            return compiled
        try:
            entry = pickle.dumps(serialize_executable.serialize(compiled))
        except Exception:  # noqa: BLE001 - host callbacks, closed-over constants, ...
            # Not kept across processes; this process runs the executable it just compiled
            # (calling jax.jit instead would compile the program a second time).
            return compiled
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            temporary = path.with_name(f"{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
            temporary.write_bytes(entry)
            os.replace(temporary, path)
        except OSError:
            pass  # a read-only cache: this process still has the executable
        return compiled


def _directory() -> str | None:
    if os.environ.get(ENV, "1") == "0":
        return None
    import jax

    if jax.config.jax_disable_jit:
        return None
    return jax.config.jax_compilation_cache_dir or None


def _context(context) -> list[str]:
    # Objects without a repr of their own (the axis environment, empty outside a trace) print
    # their address: keep their type only.
    return [repr(v) if type(v).__repr__ is not object.__repr__ else type(v).__name__ for v in context]


@functools.cache
def _environment_digest() -> str:
    import jax
    import jaxlib

    from metabo.runtime import cpu_model

    digest = hashlib.sha256()
    package = Path(__file__).resolve().parent
    for source in sorted(package.rglob("*.py")):
        digest.update(source.relative_to(package).as_posix().encode() + b"\0" + source.read_bytes())
    device = jax.devices()[0]
    client = device.client
    versions = (jax.__version__, jaxlib.__version__, client.platform, client.platform_version, device.device_kind, cpu_model())
    digest.update(repr((versions, os.environ.get("XLA_FLAGS", ""))).encode())
    return digest.hexdigest()


_HITS = threading.local()


def _count_hit(event: str, **_) -> None:
    if event == "/jax/compilation_cache/cache_hits":
        _HITS.count = getattr(_HITS, "count", 0) + 1


@functools.cache
def _listen_for_hits() -> None:
    import jax.monitoring

    jax.monitoring.register_event_listener(_count_hit)


def _jax_cache_hits() -> int:
    """Executables this thread has loaded from JAX's persistent cache so far."""
    _listen_for_hits()
    return getattr(_HITS, "count", 0)


@functools.cache
def _initialize_lapack() -> None:
    from jax._src.lax import linalg

    linalg.initialize_lapack()


__all__ = ["ENV", "FOLDER", "Persistent", "persistent_jit"]
