"""Sampling each core's chains in one forked process: PyMC's draws, without a message per draw.

PyMC's parallel sampler runs every chain in a process of its own and sends each
draw to the parent through a pipe, where the parent records it.  For a model
whose draw costs half a millisecond that traffic is most of the work: on
sleepstudy (4 x (1000 + 1000) draws, 2 cores) the parent spends as much CPU
receiving and recording 8,000 draws as the two samplers spend drawing them, on
the same two cores, and the parallel run (2.1 s) is barely faster than
sampling the four chains one after the other in one process (2.3 s).

Here the chains are split into ``cores`` contiguous groups, and each group is
sampled by ``pm.sample(cores=1)`` in a forked process that records its own draws
and sends back one InferenceData (sleepstudy: 2.1 -> 1.2 s).  The draws are
PyMC's own:

* PyMC gives chain ``i`` the ``i``-th child of ``SeedSequence(random_seed)``
  (``Generator.spawn``).  The process sampling chains ``k, k + 1, ...`` gets the
  generator of that sequence with ``n_children_spawned = k``, whose children
  are the same ``k``-th, ``(k + 1)``-th, ... streams.
* PyMC resets the step's tuning at the start of every chain, so a step shared
  by a process's chains samples each as it would alone.
* Without a step, PyMC's start (``init_nuts``: jittered points, and a mass
  matrix centred on their mean over all chains) is computed here, before
  forking, with the seeds PyMC derives from ``random_seed``.

So the result equals ``pm.sample`` with the same arguments, draw for draw
(``tests/test_chains.py``).  Used on Linux (``fork``) for PyMC's own samplers;
elsewhere, with one core or one chain, ``pm.sample`` samples as it does.
"""
from __future__ import annotations

import multiprocessing
import multiprocessing.connection
import pickle
import sys
import traceback
import warnings

import numpy as np

from ..errors import SamplingProcessError
from ..progress import Progress

POLL_SECONDS = 0.25   # how often the progress bar is redrawn while the processes sample


def forks_per_core(kwargs: dict) -> bool:
    """Whether :func:`sample_chains` samples ``pm.sample(**kwargs)`` in per-core forked processes."""
    chains, cores = kwargs.get("chains", 1), kwargs.get("cores", 1)
    return (sys.platform.startswith("linux") and "fork" in multiprocessing.get_all_start_methods()
            and not multiprocessing.current_process().daemon   # a daemonic process may not start processes
            and chains > 1 and cores > 1 and kwargs.get("nuts_sampler", "pymc") == "pymc")


def chain_groups(chains: int, cores: int) -> list[range]:
    """``chains`` split into ``min(cores, chains)`` contiguous groups whose sizes differ by at most one."""
    n_groups = min(cores, chains)
    sizes = [chains // n_groups + (g < chains % n_groups) for g in range(n_groups)]
    starts = np.cumsum([0] + sizes)
    return [range(starts[g], starts[g + 1]) for g in range(n_groups)]


def sample_chains(model, kwargs: dict):
    """``pm.sample(**kwargs)`` inside ``model``: per-core forked processes where :func:`forks_per_core`, else
    PyMC's own sampler.  ``kwargs`` holds an integer ``random_seed``; returns the InferenceData."""
    import pymc as pm

    if not forks_per_core(kwargs):
        return pm.sample(**kwargs)
    kwargs = dict(kwargs)
    if "step" not in kwargs:
        kwargs.update(_pymc_start(model, kwargs))
    groups = chain_groups(kwargs["chains"], kwargs["cores"])
    _load_array_backends()
    parts = _sample_forked(model, kwargs, groups)
    import arviz as az

    idata = az.concat(parts, dim="chain", reset_dim=True) if len(parts) > 1 else parts[0]
    _check_distinct_chains(idata)
    return idata


def _pymc_start(model, kwargs: dict) -> dict:
    """The start ``pm.sample`` computes when no step is given: ``init_nuts`` with PyMC's per-chain seeds
    (``mcmc.sample``: the chains' generators ``spawn``-ed from the seed, one ``integers(2**30)`` each)."""
    import pymc as pm

    chains = kwargs["chains"]
    seeds = [rng.integers(2**30) for rng in np.random.default_rng(kwargs["random_seed"]).spawn(chains)]
    nuts_options = {k: kwargs[k] for k in ("target_accept",) if k in kwargs}
    initial_points, step = pm.init_nuts(init=kwargs.pop("init", "auto"), chains=chains, n_init=200_000,
                                        model=model, random_seed=seeds, progressbar=False, quiet=True,
                                        tune=kwargs["tune"], initvals=kwargs.pop("initvals", None), **nuts_options)
    kwargs.pop("target_accept", None)   # the step carries it
    return {"step": step, "initvals": list(initial_points)}


def _load_array_backends() -> None:
    """xarray imports the optional array libraries it recognises (dask, where installed: 0.2 s) when it builds
    its first array; done here once, before forking, instead of in every process and again in this one."""
    import xarray as xr

    xr.DataArray(np.zeros(1))


def _group_seed(seed: int, first_chain: int) -> np.random.Generator:
    """The generator whose ``spawn`` continues ``default_rng(seed).spawn`` from child ``first_chain`` on."""
    sequence = np.random.SeedSequence(seed, n_children_spawned=first_chain)
    return np.random.Generator(np.random.PCG64(sequence))


def _sample_forked(model, kwargs: dict, groups: list[range]) -> list:
    """One forked process per group of chains; their InferenceData in chain order."""
    context = multiprocessing.get_context("fork")
    progress = bool(kwargs.get("progressbar", False))
    counts = context.RawArray("q", len(groups))   # draws done per process, for the progress bar
    processes, pending = [], {}
    try:
        for slot, group in enumerate(groups):
            receive, send = context.Pipe(duplex=False)
            process = context.Process(target=_sample_group, args=(send, model, kwargs, group, slot, counts, progress),
                                      name=f"lmmcompare chains {group.start}-{group.stop - 1}", daemon=True)
            with warnings.catch_warnings():   # Python >= 3.12: a BLAS thread pool makes fork() warn
                warnings.filterwarnings("ignore", message=".*use of fork\\(\\) may lead to deadlocks",
                                        category=DeprecationWarning)
                process.start()
            send.close()
            processes.append(process)
            pending[receive] = slot
        parts = [None] * len(groups)
        chains = sum(len(group) for group in groups)
        with Progress(chains * (kwargs["draws"] + kwargs["tune"]), f"sampling {chains} chains",
                      enabled=progress) as bar:
            while pending:
                ready = multiprocessing.connection.wait(list(pending), timeout=POLL_SECONDS)
                if progress and sum(counts) > bar.done:
                    bar.update(sum(counts) - bar.done)
                for receive in ready:
                    slot = pending.pop(receive)
                    parts[slot] = _received(receive, processes[slot], groups[slot])
        return parts
    finally:
        for process in processes:
            if process.is_alive():
                process.terminate()
            process.join()


def _sample_group(send, model, kwargs: dict, group: range, slot: int, counts, progress: bool) -> None:
    """In the forked process: ``pm.sample`` of the chains in ``group``; sends ``("ok", idata)`` or
    ``("error", exception, traceback)``, pickled."""
    import pymc as pm

    try:
        options = dict(kwargs, chains=len(group), cores=1, random_seed=_group_seed(kwargs["random_seed"], group.start),
                       progressbar=False, quiet=True)
        if isinstance(options.get("initvals"), list):
            options["initvals"] = [kwargs["initvals"][i] for i in group]
        if progress:
            def count(trace, draw):
                counts[slot] += 1
            options["callback"] = count
        with model:
            message = ("ok", pm.sample(**options), "")
    except KeyboardInterrupt:   # the parent got the same interrupt and stops every process
        return
    except BaseException as exc:  # noqa: BLE001 - every failure goes back to the parent, which raises it
        message = ("error", exc, traceback.format_exc())
    try:
        payload = pickle.dumps(message, protocol=pickle.HIGHEST_PROTOCOL)
    except Exception:  # noqa: BLE001 - an exception that cannot be pickled goes back as its text
        payload = pickle.dumps(("error", None, message[2]), protocol=pickle.HIGHEST_PROTOCOL)
    send.send_bytes(payload)
    send.close()


def _received(receive, process, group: range):
    """The InferenceData a process sent; its exception raised again here; an error if it sent nothing."""
    chains = f"chains {group.start}-{group.stop - 1}"
    try:
        status, payload, text = pickle.loads(receive.recv_bytes())
    except EOFError:
        process.join()
        raise SamplingProcessError(f"the process sampling {chains} ended without a result (exit code "
                                   f"{process.exitcode}; killed, or out of memory?)") from None
    except Exception as exc:  # noqa: BLE001 - a result or an exception that does not unpickle
        raise SamplingProcessError(f"the result of the process sampling {chains} could not be read: {exc}") from exc
    if status == "ok":
        return payload
    if payload is None:
        raise SamplingProcessError(f"sampling {chains} failed in its process:\n{text}")
    payload.add_note(f"raised while sampling {chains} in a forked process:\n{text}")
    raise payload


def _check_distinct_chains(idata) -> None:
    """Every chain's first draw differs from every other's: each process really had its own random
    streams (a PyMC that derived chain seeds differently from ``spawn`` would repeat chains here)."""
    post = idata.posterior
    first = np.column_stack([post[name].isel(draw=0).values.reshape(post.sizes["chain"], -1)
                             for name in post.data_vars])
    if len({row.tobytes() for row in first}) < len(first):
        raise SamplingProcessError("two chains sampled in separate processes started from the same draw: "
                                   "their random streams coincide; sample with cores=1")
