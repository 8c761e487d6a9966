"""Executors: what runs a plan of units (:mod:`ckptrank.pipeline`), here or on a Ray cluster.

An executor has one job, :meth:`~LocalExecutor.map`: call ``fn`` on every item and return the
results in the order of the items, like :func:`map` (and like ``concurrent.futures.Executor.map``,
the interface Dask's and Ray's executors share). :meth:`~LocalExecutor.imap` yields them one at a
time, in order, so that the caller can record each result as soon as it is there.

- :class:`LocalExecutor` (``"local"``, the default) calls ``fn`` in turn in this process.
- :class:`RayExecutor` (``"ray"``) runs each call as a Ray task: ``fn`` (with what it carries,
  e.g. the target data) is put once in the object store, every item becomes one task with
  ``max_retries`` (a task whose worker process died, e.g. killed or out of memory, runs again
  elsewhere) and the resources it needs (one GPU per task when asked and the cluster has GPUs).
  Ray is an optional dependency: ``pip install 'ckptrank[ray]'``.

Units must be idempotent for retries to be safe; the ckptrank units are (their only side effect
is a content-addressed, atomically written feature-cache entry). Results travel back to the
driver, which alone writes the results store.

This module imports nothing of ckptrank (a leaf of the import structure).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Iterator
from typing import Any, Protocol, TypeVar, runtime_checkable

__all__ = [
    "EXECUTORS",
    "Executor",
    "LocalExecutor",
    "RayExecutor",
    "get_executor",
    "resolve_executor",
]

T = TypeVar("T")
R = TypeVar("R")

#: Names accepted by :func:`get_executor` (and ``--executor``).
EXECUTORS = ("local", "ray")

_RAY_HINT = "pip install 'ckptrank[ray]'"


@runtime_checkable
class Executor(Protocol):
    """What runs units: ``map`` and ``imap`` keep the order of the items."""

    #: Whether units run in other processes (so they must be picklable, and progress bars are off).
    remote: bool

    def map(self, fn: Callable[[T], R], items: Iterable[T], *, gpu: bool = False) -> list[R]: ...

    def imap(self, fn: Callable[[T], R], items: Iterable[T], *, gpu: bool = False) -> Iterator[R]: ...

    def close(self) -> None: ...


class LocalExecutor:
    """Run every unit in turn in this process (today's behaviour, the default).

    Examples
    --------
    >>> LocalExecutor().map(abs, [-2, 1, -3])
    [2, 1, 3]
    """

    remote = False

    def map(self, fn: Callable[[T], R], items: Iterable[T], *, gpu: bool = False) -> list[R]:
        """``[fn(item) for item in items]``; ``gpu`` is ignored (``fn`` picks its own device)."""
        return list(self.imap(fn, items, gpu=gpu))

    def imap(self, fn: Callable[[T], R], items: Iterable[T], *, gpu: bool = False) -> Iterator[R]:
        """Yield ``fn(item)`` for each item, computed when the caller asks for it."""
        for item in items:
            yield fn(item)

    def close(self) -> None:
        """Nothing to release."""

    def __enter__(self) -> LocalExecutor:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return "LocalExecutor()"


def _import_ray() -> Any:
    try:
        import ray
    except ImportError as err:
        raise ImportError(f"the ray executor needs Ray, which is not installed; {_RAY_HINT}") from err
    return ray


def _call(fn: Callable[[Any], Any], item: Any) -> Any:
    """The body of every Ray task (``fn`` arrives resolved from its object reference)."""
    return fn(item)


class RayExecutor:
    """Run every unit as a Ray task, retried when its worker process dies.

    Parameters
    ----------
    address : str, optional
        The cluster to join (``"auto"``, ``"HOST:PORT"``, ``"ray://HOST:10001"``). None: the
        ``RAY_ADDRESS`` environment variable if set, else a Ray instance started on this machine
        (shut down by :meth:`close`). Ignored when Ray is already initialised in this process.
    max_retries : int, default 3
        How often a task is run again after its worker process died (system failures; an
        exception raised by the unit itself is not retried, it is the unit's answer).
    num_cpus : float, default 1
        CPUs each task reserves.
    gpus_per_task : float, default 1
        GPUs each task reserves when the caller asks for a GPU (``device="cuda"``).
    init_kwargs : dict, optional
        More keyword arguments for ``ray.init`` (e.g. ``num_cpus``, ``object_store_memory``,
        ``runtime_env``), used only when this executor starts or joins the cluster.

    Raises
    ------
    ImportError
        Ray is not installed (the message says ``pip install 'ckptrank[ray]'``).
    ValueError
        A negative ``max_retries`` or resource.

    Notes
    -----
    The results are returned in the order of the items, whatever order the tasks finish in.
    When a task still fails after its retries, :meth:`map` raises the unit's own exception
    (unwrapped from Ray's) or, for a dead worker, a ``RuntimeError`` naming the item.
    """

    remote = True

    def __init__(
        self,
        address: str | None = None,
        *,
        max_retries: int = 3,
        num_cpus: float = 1,
        gpus_per_task: float = 1,
        init_kwargs: dict[str, Any] | None = None,
    ) -> None:
        if not isinstance(max_retries, int) or max_retries < 0:
            raise ValueError(f"max_retries must be a non-negative integer, got {max_retries!r}")
        if num_cpus < 0 or gpus_per_task < 0:
            raise ValueError(
                f"num_cpus ({num_cpus}) and gpus_per_task ({gpus_per_task}) must be non-negative"
            )
        self._ray = _import_ray()
        self.address = address if address is not None else os.environ.get("RAY_ADDRESS") or None
        self.max_retries = max_retries
        self.num_cpus = num_cpus
        self.gpus_per_task = gpus_per_task
        self.init_kwargs = dict(init_kwargs or {})
        self._started = False

    def __repr__(self) -> str:
        return f"RayExecutor(address={self.address!r}, max_retries={self.max_retries})"

    def _ensure_ray(self) -> Any:
        ray = self._ray
        if not ray.is_initialized():
            kwargs = {"include_dashboard": False, "log_to_driver": False, **self.init_kwargs}
            if self.address is not None:
                kwargs["address"] = self.address
                # these describe a new local instance, not a cluster being joined
                for key in ("num_cpus", "num_gpus", "object_store_memory", "include_dashboard"):
                    kwargs.pop(key, None)
            try:
                ray.init(**kwargs)
            except ConnectionError as err:
                raise ConnectionError(
                    f"could not join the Ray cluster at {self.address!r} ({' '.join(str(err).split())}); "
                    "start it with `ray start --head` or check --ray-address"
                ) from err
            self._started = True
        return ray

    def _options(self, ray: Any, gpu: bool) -> dict[str, Any]:
        options: dict[str, Any] = {"max_retries": self.max_retries, "num_cpus": self.num_cpus}
        if gpu:
            gpus = float(ray.cluster_resources().get("GPU", 0.0))
            if gpus <= 0:
                raise ValueError(
                    "device 'cuda' was asked but the Ray cluster has 0 GPUs; add GPU nodes to the cluster "
                    "or run on the CPU (device 'cpu')"
                )
            options["num_gpus"] = self.gpus_per_task
        return options

    def map(self, fn: Callable[[T], R], items: Iterable[T], *, gpu: bool = False) -> list[R]:
        """Run ``fn(item)`` as one Ray task per item; the results in the order of ``items``.

        Parameters
        ----------
        fn : callable
            A picklable function of one item (a module-level function or a
            :func:`functools.partial` of one); it is put in the object store once.
        items : iterable
            The items (each is sent with its own task: keep them small).
        gpu : bool
            Give each task ``gpus_per_task`` GPUs (an error when the cluster has none).
        """
        return list(self.imap(fn, items, gpu=gpu))

    def imap(self, fn: Callable[[T], R], items: Iterable[T], *, gpu: bool = False) -> Iterator[R]:
        """Submit every task now, then yield the results in the order of ``items`` as they finish."""
        ray = self._ensure_ray()
        items = list(items)
        remote = ray.remote(_call).options(**self._options(ray, gpu))
        fn_ref = ray.put(fn)
        refs = [remote.remote(fn_ref, item) for item in items]
        return self._results(ray, refs, len(items))

    def _results(self, ray: Any, refs: list[Any], total: int) -> Iterator[Any]:
        from ray import exceptions

        lost = tuple(
            getattr(exceptions, name)
            for name in ("WorkerCrashedError", "NodeDiedError", "OwnerDiedError", "ObjectLostError")
            if hasattr(exceptions, name)
        )
        fetched = 0
        try:
            for i, ref in enumerate(refs):
                try:
                    result = ray.get(ref)
                except exceptions.RayTaskError as err:
                    cause = getattr(err, "cause", None)
                    if isinstance(cause, BaseException):
                        raise cause from None
                    raise RuntimeError(f"unit {i + 1} of {total} failed on Ray: {_first_line(err)}") from None
                except lost as err:
                    raise RuntimeError(
                        f"unit {i + 1} of {total} was lost: its Ray worker died {self.max_retries + 1} "
                        f"time(s) ({type(err).__name__}); raise max_retries or check the workers' memory"
                    ) from None
                except exceptions.RayError as err:  # out of memory, cancelled, object store full, ...
                    raise RuntimeError(
                        f"unit {i + 1} of {total} failed on Ray ({type(err).__name__}: {_first_line(err)})"
                    ) from None
                fetched = i + 1
                yield result
        finally:
            # After an error, an interrupt or a caller that stopped reading, the tasks not read are left to
            # finish and their results dropped, not cancelled: in Ray 2.60 a cancel that races with a task's
            # completion aborts the driver process (RAY_CHECK "Tried to complete task that was not pending",
            # seen in this project's CI; ray-project/ray#54527). Units are idempotent, so a leftover task at
            # most rewrites its own cache entry; a job's tasks end with its driver, or with close().
            del refs[fetched:]

    def close(self) -> None:
        """Shut down the Ray instance this executor started (a joined cluster keeps running)."""
        if self._started and self._ray.is_initialized():
            self._ray.shutdown()
        self._started = False

    def __enter__(self) -> RayExecutor:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _first_line(err: BaseException) -> str:
    lines = [line.strip() for line in str(err).splitlines() if line.strip()]
    return lines[-1] if lines else type(err).__name__


def get_executor(name: str = "local", *, address: str | None = None, **options: Any) -> Executor:
    """The executor called ``name`` (``"local"`` or ``"ray"``).

    Parameters
    ----------
    name : {"local", "ray"}
    address : str, optional
        The Ray cluster's address (``"ray"`` only; see :class:`RayExecutor`).
    **options
        More :class:`RayExecutor` arguments.

    Raises
    ------
    ValueError
        An unknown name, or an address given for the local executor.
    ImportError
        ``"ray"`` without Ray installed.

    Examples
    --------
    >>> get_executor("local")
    LocalExecutor()
    """
    key = str(name).strip().lower()
    if key == "local":
        if address is not None:
            raise ValueError(
                f"a Ray address ({address!r}) was given with the local executor; pass --executor ray"
            )
        return LocalExecutor()
    if key == "ray":
        return RayExecutor(address, **options)
    raise ValueError(f"unknown executor {name!r}; choose one of: {', '.join(EXECUTORS)}")


def resolve_executor(executor: str | Executor | None) -> tuple[Executor, bool]:
    """An executor from a name, an instance or None (local); and whether the caller owns it.

    The caller closes an executor it owns (one made here from a name) when it is done.
    """
    if executor is None:
        return LocalExecutor(), True
    if isinstance(executor, str):
        return get_executor(executor), True
    if not isinstance(executor, Executor):
        raise TypeError(
            "executor must be 'local', 'ray' or an executor with map/imap/close, "
            f"not {type(executor).__name__}"
        )
    return executor, False
