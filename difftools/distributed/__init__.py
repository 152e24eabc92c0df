"""Scale-out: solver batches on a dask cluster and data-parallel (DDP) statistics, one module each.

``dask_executor(address)`` returns a ``concurrent.futures.Executor`` that any per-instance solver
accepts as ``executor=``; dask is imported lazily (``pip install "difftools[dist]"``).
Data-parallel training needs nothing from the user: :class:`difftools.AIMLE` all-reduces its
step-size statistics by itself whenever ``torch.distributed`` is initialised (see
``docs/scaling-out.md``), through :func:`~difftools.distributed.data_parallel.summed_over_ranks`.
"""

from difftools.distributed.dask_cluster import DaskExecutor, dask_executor
from difftools.distributed.data_parallel import summed_over_ranks

__all__ = ["DaskExecutor", "dask_executor", "summed_over_ranks"]
