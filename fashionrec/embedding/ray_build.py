"""Embedding on a Ray cluster: an :class:`~fashionrec.embedding.execute.Executor` built on Ray Data.

:class:`RayExecutor` runs the embedding step of
:func:`~fashionrec.embedding.build_index` as a Ray Data pipeline; planning,
checkpointing and assembly stay on the driver, unchanged, so a Ray build writes
the same index folder as a local one and either kind of run resumes the other's
``.partial`` checkpoint:

* the images to embed become a Dataset of ``{key, path}`` rows
  (:func:`ray.data.from_items`, blocks of ``block_rows`` rows);
* **decoding** runs in Ray tasks (``map_batches`` over a function): each file is
  decoded and preprocessed with the backbone's own preprocessing, exactly as
  the local path does (:func:`~fashionrec.embedding.execute.decode_task`);
* **embedding** runs in a pool of ``actors`` Ray actors (``map_batches`` over a
  class, :class:`ray.data.ActorPoolStrategy`), each holding one model, called on
  batches of ``batch_size`` images;
* results stream back to the driver (``iter_batches``), which hands them to
  :func:`build_index` in :class:`~fashionrec.embedding.outcomes.Chunk` s of at
  least ``checkpoint_every`` images: each is written to the checkpoint before
  more work is counted as done.

Where it runs: ``address="local"`` (or None) starts a Ray runtime on this machine for
the run and stops it afterwards; any other address (``"auto"``, ``"HOST:6379"``,
``"ray://HOST:10001"``) connects to a running cluster (``ray start --head`` …). A
session this process already opened (:func:`ray.init` by the caller) is used
as it is and left open. Every node must read the catalog images at the same
path as the driver, and import the same fashionrec (same environment); each
actor loads the backbone itself, from the same weights file or package. A
backbone registered in the driver through the Python API is sent to the actors,
so custom backbones work too.

Ray is an optional dependency (``pip install 'fashionrec[ray]'``), imported only
when a run starts.
"""

from __future__ import annotations

import contextlib
import functools
import importlib.util
import logging
import math
import os
import re
import warnings
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ..catalog import Catalog
from ..errors import FashionrecError
from ..settings import available_cpus
from .execute import Executor, ImageTask, ProgressCallback, decode_task
from .embedder import ImageEmbedder
from .outcomes import Chunk, ChunkBuffer, ImageFailure

log = logging.getLogger(__name__)

RAY_EXTRA = "pip install 'fashionrec[ray]'"
"""How to install what :class:`RayExecutor` needs."""

LOCAL = "local"
"""The address that starts a Ray runtime on this machine for the run (Ray's own name for it)."""


class RayUnavailableError(FashionrecError):
    """Ray (with Ray Data) is not installed."""


class RayClusterError(FashionrecError):
    """The Ray cluster cannot be reached, or its workers cannot do the work."""


def require_ray() -> None:
    """Raise :class:`RayUnavailableError` (naming the extra to install) when Ray is not installed; imports nothing."""
    if importlib.util.find_spec("ray") is None:
        raise RayUnavailableError(f"embedding on Ray needs the ray package, which is not installed: {RAY_EXTRA}")


def _import_ray_data():
    """``(ray, ray.data)``; :class:`RayUnavailableError` when either is missing."""
    require_ray()
    try:
        import ray
        import ray.data
    except ImportError as exc:  # ray without its data extra (pyarrow, pandas...) or a broken install
        raise RayUnavailableError(f"embedding on Ray needs Ray Data, which cannot be imported ({exc}): "
                                  f"{RAY_EXTRA}") from exc
    return ray, ray.data


class RayExecutor(Executor):
    """Embeds on a Ray cluster: decoding in Ray tasks, the model in an actor pool (see the module docstring).

    Parameters
    ----------
    address: ``"local"`` or None (a Ray runtime started on this machine for the
        run), ``"auto"`` (the cluster this machine belongs to), ``"HOST:PORT"``
        of a head node, or a ``ray://`` client address.
    actors: model replicas (Ray actors); None for the cluster's CPUs less a
        quarter (at least one) left for decoding, divided by ``cpus_per_actor``.
    cpus_per_actor: CPUs each actor reserves, and its model's intra-op threads.
    cpus_per_decode_task: CPUs each decoding task reserves. Half a CPU by
        default: decoding waits on file reads part of the time. (Ray Data runs
        tasks that reserve what the actors reserve inside the actors, before the
        model, rather than beside it.)
    block_rows: images per Ray block (one decoding task each); None for the
        build's ``batch_size``.
    num_cpus: CPUs of a local runtime (None: those this process may use);
        ignored when connecting to a cluster.
    runtime_env: Ray runtime environment of the job (``env_vars``, ``py_modules``,
        ``worker_process_setup_hook``...), passed to :func:`ray.init`.
    actor_start_timeout_s: seconds the actors may take to start (waiting for
        resources, loading the model) before the run fails.

    Raises :class:`RayUnavailableError` at once when Ray is not installed.
    After a run, :attr:`nodes` holds the ids of the Ray nodes whose actors embedded images.
    """

    def __init__(
        self,
        address: str | None = LOCAL,
        *,
        actors: int | None = None,
        cpus_per_actor: float = 1,
        cpus_per_decode_task: float = 0.5,
        block_rows: int | None = None,
        num_cpus: int | None = None,
        runtime_env: Mapping[str, Any] | None = None,
        actor_start_timeout_s: float = 600,
    ):
        for name, value in (("actors", actors), ("block_rows", block_rows), ("num_cpus", num_cpus)):
            if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
                raise FashionrecError(f"{name} must be a whole number, 1 or more (or None for the default); "
                                      f"got {value!r}")
        for name, value in (("cpus_per_actor", cpus_per_actor), ("cpus_per_decode_task", cpus_per_decode_task),
                            ("actor_start_timeout_s", actor_start_timeout_s)):
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0:
                raise FashionrecError(f"{name} must be a number above 0; got {value!r}")
        if address is not None and (not isinstance(address, str) or not address.strip()):
            raise FashionrecError(f"a Ray address must be 'local', 'auto', HOST:PORT or ray://HOST:PORT; "
                                  f"got {address!r}")
        require_ray()
        self.address = LOCAL if address is None else address.strip()
        self.actors = actors
        self.cpus_per_actor = cpus_per_actor
        self.cpus_per_decode_task = cpus_per_decode_task
        self.block_rows = block_rows
        self.num_cpus = num_cpus
        self.runtime_env = dict(runtime_env) if runtime_env else None
        self.actor_start_timeout_s = actor_start_timeout_s
        self.nodes: set[str] = set()

    def _check_resources(self, cluster_cpus: float) -> int:
        """The number of actors for a cluster of ``cluster_cpus`` CPUs; raises :class:`RayClusterError` when they
        and one decoding task cannot all run on a local runtime (a cluster may still grow: there it is a warning)."""
        actors = self.actors or default_actors(cluster_cpus, self.cpus_per_actor)
        needed = actors * self.cpus_per_actor + self.cpus_per_decode_task
        if needed > cluster_cpus:
            message = (f"{actors} actors of {self.cpus_per_actor:g} CPUs and decoding tasks of "
                       f"{self.cpus_per_decode_task:g} CPUs need {needed:g} CPUs; the Ray cluster has {cluster_cpus:g}")
            if self.address == LOCAL:
                raise RayClusterError(f"{message}: expected fewer actors (--ray-actors) or more CPUs")
            log.warning("%s: the run waits up to %g s for more nodes", message, self.actor_start_timeout_s)
        return actors

    def _embedded(self, decoded, data, replica: ImageEmbedder, config, *, batch_size: int, actors: int):
        """``decoded`` embedded by the actor pool.

        On a cluster, Ray Data restarts an actor that died (a node lost) and
        retries its batches. On a local runtime no node can be lost, and an
        actor that dies there (out of memory) would die again: it is not
        restarted, the run stops and the next one resumes from the checkpoint.
        That also spares the console Ray's notice, for each actor, that
        restarting one might fail (ray-project/ray#53727). Ray takes that
        option only through arguments it has deprecated; a Ray that no longer
        takes them restarts actors on a local runtime too.
        """
        embed = functools.partial(
            decoded.map_batches, _EmbedActor, fn_constructor_kwargs={"embedder": replica, "config": config},
            batch_size=batch_size, batch_format="numpy", num_cpus=self.cpus_per_actor,
            compute=data.ActorPoolStrategy(size=actors),
        )
        if self.address != LOCAL:
            return embed()
        try:
            with warnings.catch_warnings():
                warnings.filterwarnings("ignore", message="`ray_remote_args` is deprecated")
                return embed(max_restarts=0)
        except TypeError:
            return embed()

    def __repr__(self) -> str:
        return f"RayExecutor(address={self.address!r}, actors={self.actors!r}, cpus_per_actor={self.cpus_per_actor!r})"

    def run(
        self,
        embedder: ImageEmbedder,
        tasks: Sequence[ImageTask],
        *,
        batch_size: int,
        checkpoint_every: int,
        progress: ProgressCallback | None = None,
    ) -> Iterator[Chunk]:
        ray, data = _import_ray_data()
        # Loads the driver's model: its settings are what the actors must reproduce.
        replica = embedder.replica(num_threads=max(1, math.ceil(self.cpus_per_actor)), origin="the driver's")
        config = embedder.config
        paths = {task.key: task.path for task in tasks}
        total, done = len(tasks), 0
        pending = ChunkBuffer(embedder.dim)
        self.nodes = set()
        if self.address == LOCAL and not ray.is_initialized():
            self._check_resources(self.num_cpus or available_cpus())  # before the runtime starts, not after
        with (ray_session(self.address, num_cpus=self.num_cpus, runtime_env=self.runtime_env),
              _data_context(data, self.actor_start_timeout_s)):
            actors = self._check_resources(ray.cluster_resources().get("CPU", 0))
            rows = self.block_rows or batch_size
            log.info("embedding %d images on Ray (%s): %d actors of %s CPUs, batches of %d, blocks of %d",
                     total, self.address, actors, self.cpus_per_actor, batch_size, rows)
            decoded = (
                data.from_items([{"key": task.key, "path": str(task.path)} for task in tasks],
                                override_num_blocks=max(1, math.ceil(total / rows)))
                .map_batches(_decode_batch, fn_kwargs={"preprocessing": embedder.preprocessing,
                                                       "max_pixels": embedder.max_pixels},
                             batch_size=None, batch_format="numpy", num_cpus=self.cpus_per_decode_task)
            )
            dataset = self._embedded(decoded, data, replica, config, batch_size=batch_size, actors=actors)
            try:
                with _worker_errors(self.address):
                    for batch in dataset.iter_batches(batch_size=None, batch_format="numpy"):
                        keys, errors = [str(k) for k in batch["key"]], [str(e) for e in batch["error"]]
                        ok = [i for i, error in enumerate(errors) if not error]
                        for i, error in enumerate(errors):
                            if error:
                                log.warning("skipping %s: %s", paths.get(keys[i], keys[i]), error)
                                pending.add_failure(keys[i], ImageFailure(error))
                        if ok:
                            pending.add_batch([keys[i] for i in ok],
                                              np.asarray(batch["vector"][ok], dtype=np.float32))
                        self.nodes.update(str(node) for node in batch["node"])
                        done += len(keys)
                        if progress:
                            progress(done, total)
                        if len(pending) >= checkpoint_every:
                            yield pending.flush()
                if len(pending):
                    yield pending.flush()
            except KeyboardInterrupt:
                # Ctrl-C: hand back what came back from the cluster for checkpointing, then stop.
                if len(pending):
                    yield pending.flush()
                raise
        log.info("embedded %d images on %d Ray node(s)", done, len(self.nodes))


def build_index_ray(
    catalog: Catalog,
    out: str | os.PathLike,
    *,
    address: str | None = LOCAL,
    actors: int | None = None,
    cpus_per_actor: float = 1,
    num_cpus: int | None = None,
    runtime_env: Mapping[str, Any] | None = None,
    **kwargs: Any,
):
    """:func:`~fashionrec.embedding.build_index` with the embedding on Ray (a :class:`RayExecutor`).

    ``address``, ``actors``, ``cpus_per_actor``, ``num_cpus`` and ``runtime_env``
    are the executor's; every other keyword argument is build_index's
    (``embedder``, ``where``, ``batch_size``, ``progress``, ``checkpoint_every``,
    ``follow_links``). Returns build_index's :class:`~fashionrec.embedding.IndexRunSummary`.
    """
    from .build import build_index

    if "executor" in kwargs or "workers" in kwargs:
        raise FashionrecError("build_index_ray makes its own executor; pass neither executor nor workers")
    executor = RayExecutor(address, actors=actors, cpus_per_actor=cpus_per_actor, num_cpus=num_cpus,
                           runtime_env=runtime_env)
    return build_index(catalog, out, executor=executor, **kwargs)


def default_actors(cluster_cpus: float, cpus_per_actor: float = 1) -> int:
    """Actors for a cluster of ``cluster_cpus`` CPUs: all but a quarter of them (at least one CPU), which is
    left to the decoding tasks; at least one actor."""
    free = cluster_cpus - max(1.0, cluster_cpus // 4)
    return max(1, int(free // cpus_per_actor))


@contextlib.contextmanager
def ray_session(address: str | None = LOCAL, *, num_cpus: int | None = None,
                runtime_env: Mapping[str, Any] | None = None) -> Iterator[Any]:
    """A Ray session for the duration of the block; yields the ``ray`` module.

    A session this process already opened is used as it is and left open.
    Otherwise ``"local"`` starts a runtime on this machine with ``num_cpus``
    CPUs (default: those this process may use), no dashboard and Ray's
    defaults otherwise (token authentication unless ``RAY_AUTH_MODE`` says
    otherwise; Ray's notice saying so is not shown), and stops it at the end; any other address
    connects to that cluster and disconnects at the end. Usage statistics are
    off either way (``RAY_USAGE_STATS_ENABLED=0`` unless set). Raises
    :class:`RayClusterError` when the cluster cannot be reached.
    """
    ray, _ = _import_ray_data()
    address = LOCAL if address is None else address
    if ray.is_initialized():
        log.info("using the Ray session this process already opened (cluster %s) instead of opening one (%s)",
                 ray.get_runtime_context().gcs_address, address)
        yield ray
        return
    # Ray reads these from the environment of this process (and passes them on to the runtime it starts).
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    options: dict[str, Any] = {
        "include_dashboard": False,
        "logging_level": logging.WARNING,
        "log_to_driver": log.isEnabledFor(logging.DEBUG),  # worker output stays in the session's log files
        "runtime_env": dict(runtime_env) if runtime_env else None,
    }
    try:
        if address == LOCAL:
            with _without_auth_notice():
                ray.init(address=LOCAL, num_cpus=num_cpus or available_cpus(), **options)
        else:
            _check_reachable(address)
            ray.init(address=address, **options)
    except RayClusterError:
        raise
    except Exception as exc:  # ConnectionError, ValueError, AuthenticationError...: all a cluster that cannot be used
        raise RayClusterError(f"cannot start or reach the Ray cluster at {address!r}: {type(exc).__name__}: "
                              f"{_first_line(exc)}; expected 'local', or the address of a running head node "
                              "(`ray start --head` prints it), e.g. HOST:6379; a cluster with token "
                              "authentication also needs RAY_AUTH_MODE=token and its token") from exc
    try:
        yield ray
    finally:
        ray.shutdown()


def _check_reachable(address: str) -> None:
    """Raise :class:`RayClusterError` at once when the head node at ``address`` (``HOST:PORT`` or
    ``ray://HOST:PORT``) does not accept connections: :func:`ray.init` would retry for minutes."""
    from urllib.parse import urlsplit

    from ..network import probe

    try:
        parts = urlsplit(address if "://" in address else f"//{address}")
        host, port = parts.hostname, parts.port
    except ValueError:
        host, port = None, None
    if not host or not port:
        return  # "auto", or a form Ray resolves itself
    reason = probe(host, port)
    if reason is not None:
        raise RayClusterError(f"cannot reach the Ray cluster at {address!r}: {reason}; expected the address of a "
                              "running head node (`ray start --head` prints it), e.g. HOST:6379, or 'local'")


class _DropAuthNotice(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return not record.getMessage().startswith("Token authentication is enabled for this Ray cluster")


@contextlib.contextmanager
def _without_auth_notice() -> Iterator[None]:
    """Ray's notice, on starting a local runtime, that token authentication is on (its default) is not shown:
    a local runtime is this process's own business, and the notice would sit above the progress bar."""
    logger = logging.getLogger("ray._private.authentication.authentication_token_setup")
    notice = _DropAuthNotice()
    logger.addFilter(notice)
    try:
        yield
    finally:
        logger.removeFilter(notice)


@contextlib.contextmanager
def _data_context(data, actor_start_timeout_s: float) -> Iterator[None]:
    """Ray Data set up for one run, as it was afterwards.

    * No progress bars and no console log lines below warnings (the caller
      shows progress; its log file in the Ray session folder keeps everything,
      and DEBUG logging keeps the console lines too).
    * An error raised by fashionrec in a task or actor reaches the driver as
      itself, not wrapped (see :func:`_worker_errors`).
    * The actor pool waits at most ``actor_start_timeout_s`` for its actors to
      start (resources, model loading), then fails, rather than waiting forever.
    """
    context = data.DataContext.get_current()
    fields = {"enable_progress_bars": False, "raise_original_map_exception": True,
              "wait_for_min_actors_s": max(1, math.ceil(actor_start_timeout_s))}
    fields = {name: value for name, value in fields.items() if hasattr(context, name)}  # older Rays lack some
    saved = {name: getattr(context, name) for name in fields}
    for name, value in fields.items():
        setattr(context, name, value)
    handlers = [] if log.isEnabledFor(logging.DEBUG) else [
        h for h in logging.getLogger("ray.data").handlers
        if isinstance(h, logging.StreamHandler) and not isinstance(h, logging.FileHandler)
    ]
    for handler in handlers:
        handler.addFilter(_console_record)
    try:
        yield
    finally:
        for name, value in saved.items():
            setattr(context, name, value)
        for handler in handlers:
            handler.removeFilter(_console_record)


def _console_record(record: logging.LogRecord) -> bool:
    """Whether Ray Data shows ``record`` on the console during a run: its warnings and errors, except its notice
    that its progress bars are off (ours replaces them)."""
    return record.levelno >= logging.WARNING and not record.getMessage().startswith("Progress bars disabled")


@contextlib.contextmanager
def _worker_errors(address: str) -> Iterator[None]:
    """Re-raise what failed on the cluster as one clear :class:`FashionrecError`.

    A fashionrec error raised on a worker keeps its type and message; a worker
    that cannot import fashionrec says what every node needs; anything else
    becomes a :class:`RayClusterError` quoting the innermost error Ray reports.
    (Ray Data hands a worker's error to the driver as the text of its traceback,
    so that is where the original error is read from.)
    """
    try:
        yield
    except KeyboardInterrupt:
        raise
    except Exception as exc:
        chain = _chain(exc)
        if not any(_from_ray(cause) for cause in chain):
            raise  # not from the cluster: this process's own error
        name, message = _reported_error(chain)
        # Ray re-raises a worker's error as an instance of its own type *and* the original's, the original as
        # its ``cause``: the innermost one is the error as fashionrec raised it.
        original = next((c for c in reversed(chain) if isinstance(c, FashionrecError) and not _from_ray(c)), None)
        if original is not None:  # its first line: Ray Data appends its retry advice to the message
            name, message = f"{type(original).__module__}.{type(original).__qualname__}", _first_line(original)
        kind = _fashionrec_error_type(name)
        if kind is not None:
            try:
                error: FashionrecError = kind(f"on a Ray worker: {message}")
            except TypeError:  # a subclass with a constructor of its own
                error = RayClusterError(f"on a Ray worker: {message}")
            raise error from exc
        if "No module named 'fashionrec" in message:
            raise RayClusterError(
                f"a Ray worker of {address!r} cannot import fashionrec ({message}); expected fashionrec installed "
                "in the same environment on every node") from exc
        raise RayClusterError(f"the embedding failed on the Ray cluster {address!r}: "
                              f"{name.rsplit('.', 1)[-1]}: {message}") from exc


def _from_ray(exc: BaseException) -> bool:
    """Whether ``exc`` is one of Ray's exceptions (which may also be an instance of a worker's error type)."""
    return type(exc).__module__.split(".")[0] == "ray"


def _chain(exc: BaseException) -> list[BaseException]:
    """``exc`` and the exceptions it wraps (Ray's ``cause``, then ``__cause__`` / ``__context__``), outermost first."""
    found: list[BaseException] = []
    current: BaseException | None = exc
    while current is not None and all(current is not seen for seen in found):
        found.append(current)
        inner = getattr(current, "cause", None)
        current = inner if isinstance(inner, BaseException) else (current.__cause__ or current.__context__)
    return found


_ERROR_LINE = re.compile(r"^([A-Za-z_][\w.]*(?:Error|Exception)): (.+)$")


def _reported_error(chain: list[BaseException]) -> tuple[str, str]:
    """``(qualified type name, message)`` of the last error in the traceback texts of ``chain`` that is not one
    of Ray's own wrappers; the innermost exception's own when the texts hold none."""
    found = None
    for cause in chain:
        text = str(getattr(cause, "error_msg", "") or cause)
        for line in text.splitlines():
            match = _ERROR_LINE.match(line.strip())
            if match and not match.group(1).startswith("ray."):
                found = (match.group(1), match.group(2))
    return found or (type(chain[-1]).__name__, _first_line(chain[-1]))


def _fashionrec_error_type(name: str) -> type[FashionrecError] | None:
    """The :class:`FashionrecError` subclass named ``name`` (``fashionrec.errors.IndexFolderError``), else None."""
    module, _, attribute = name.rpartition(".")
    if not module.startswith("fashionrec"):
        return None
    try:
        kind = getattr(importlib.import_module(module), attribute)
    except (ImportError, AttributeError):
        return None
    return kind if isinstance(kind, type) and issubclass(kind, FashionrecError) else None


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


# ----------------------------------------------------------------------------- on the workers
# Module-level, so Ray ships them by reference: the workers import this module.


def _decode_batch(batch: dict[str, np.ndarray], preprocessing, max_pixels: int | None) -> dict[str, np.ndarray]:
    """A Ray task: ``{key, path}`` rows -> ``{key, pixels, error}``.

    ``pixels``: (n, 3, S, S) float32, the preprocessed image of each row (zeros
    for a row that failed); ``error``: the failure's reason, "" for a decoded image.
    """
    keys = [str(k) for k in batch["key"]]
    size = preprocessing.input_size
    pixels = np.zeros((len(keys), 3, size, size), np.float32)
    errors = []
    for i, (key, path) in enumerate(zip(keys, batch["path"])):
        result = decode_task(ImageTask(key, Path(str(path))), preprocessing, max_pixels)
        if isinstance(result, ImageFailure):
            errors.append(result.reason)
        else:
            pixels[i] = result
            errors.append("")
    return {"key": np.array(keys, dtype=object), "pixels": pixels, "error": np.array(errors, dtype=object)}


class _EmbedActor:
    """A Ray actor holding one model: ``{key, pixels, error}`` rows -> ``{key, vector, error, node}``.

    ``vector``: (n, D) float32, zeros where ``error`` is set; ``node``: the id of the Ray node that embedded.
    """

    def __init__(self, embedder: ImageEmbedder, config) -> None:
        from ..models import list_backbones, register_backbone

        if config.name not in {c.name for c in list_backbones()}:  # a backbone the driver registered at run time
            register_backbone(config)
        self.embedder = embedder
        self.error: FashionrecError | None = None
        try:
            self.embedder.extractor  # load now, not in the first batch: the first batch's time stays the model's
        except FashionrecError as exc:
            # Raised from the first call instead, where Ray hands it to the driver as itself (an error raised
            # while an actor starts reaches the driver as text only).
            self.error = exc
        try:
            import ray

            self.node = ray.get_runtime_context().get_node_id()
        except Exception:  # not in a Ray worker (called directly)
            self.node = ""

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        if self.error is not None:
            raise self.error
        errors = np.asarray(batch["error"], dtype=object)
        ok = np.flatnonzero(errors == "")
        vectors = np.zeros((len(errors), self.embedder.dim), np.float32)
        if len(ok):
            vectors[ok] = self.embedder.embed_arrays(np.asarray(batch["pixels"])[ok])
        return {"key": batch["key"], "vector": vectors, "error": errors,
                "node": np.array([self.node] * len(errors), dtype=object)}
