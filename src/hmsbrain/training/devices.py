"""Where a run computes: mixed precision, and the distribution strategy over several devices.

``train.strategy`` is ``none``, ``mirrored`` (``tf.distribute.MirroredStrategy``: one host, any
number of GPUs) or ``data_parallel`` (``keras.distribution.DataParallel`` on the JAX backend:
one or several hosts). TensorFlow's multi-worker strategy is broken with Keras 3 (keras issue
20585), hence JAX for several hosts: :func:`join_cluster` starts JAX's distributed runtime for
the cluster :mod:`.cluster` reads, and only process 0 writes (:func:`is_writer`).
"""

from __future__ import annotations

import contextlib

import keras

from hmsbrain.config import Config, ConfigError
from hmsbrain.models.registry import all_layers
from hmsbrain.training.cluster import Cluster, ClusterError, check_reachable, cluster_from_env


def has_gpu() -> bool:
    """Whether the Keras backend sees a GPU (TensorFlow, or JAX for data_parallel)."""
    if keras.config.backend() == "jax":
        import jax

        return any(d.platform == "gpu" for d in jax.devices())
    import tensorflow as tf  # only for device discovery

    return bool(tf.config.list_physical_devices("GPU"))


def configure_precision(mode: str) -> str:
    """Set Keras' global dtype policy for ``train.mixed_precision`` and return its name:
    ``mixed_float16`` when on (``auto``: on a GPU), else ``float32``."""
    use = mode == "on" or (mode == "auto" and has_gpu())
    policy = "mixed_float16" if use else "float32"
    keras.mixed_precision.set_global_policy(policy)
    return policy


def strategy_scope(cfg: Config) -> contextlib.AbstractContextManager:
    """Where the model is built for ``train.strategy``: a MirroredStrategy scope (one host),
    after setting Keras' DataParallel distribution (JAX, one or several hosts), or nothing.

    Several processes (data_parallel) have joined their cluster before (:func:`join_cluster`);
    each then feeds its share of every batch."""
    if cfg.train.strategy == "mirrored":
        if keras.config.backend() != "tensorflow":
            raise ConfigError("train.strategy=mirrored needs the TensorFlow backend")
        import tensorflow as tf

        strategy = tf.distribute.MirroredStrategy(cfg.train.devices or None)
        print(
            f"train.strategy=mirrored: {strategy.num_replicas_in_sync} replicas "
            f"({', '.join(strategy.extended.worker_devices)})"
        )
        return strategy.scope()
    if cfg.train.strategy == "data_parallel":
        _set_data_parallel(cfg)
    return contextlib.nullcontext()


def _set_data_parallel(cfg: Config) -> None:
    if keras.config.backend() != "jax":
        raise ConfigError(
            "train.strategy=data_parallel needs the JAX backend: run with KERAS_BACKEND=jax "
            "(TensorFlow's multi-worker strategy is broken with Keras 3, keras issue 20585)"
        )
    devices = cfg.train.devices or keras.distribution.list_devices()
    if cfg.train.batch_size % len(devices):
        raise ConfigError(
            f"train.batch_size={cfg.train.batch_size} must be a multiple of the "
            f"{len(devices)} devices of train.strategy=data_parallel (each gets an equal share)"
        )
    # Each process's batches are its share already (EpochBatches' shard): Keras must not
    # shard them again (it can only do that for a tf.data pipeline, and refuses the rest).
    keras.distribution.set_distribution(
        keras.distribution.DataParallel(devices=devices, auto_shard_dataset=False)
    )
    print(
        f"train.strategy=data_parallel: {len(devices)} devices ({', '.join(devices)}), "
        f"{keras.distribution.distribution().num_processes} process(es)"
    )


def join_cluster(cfg: Config) -> Cluster | None:
    """Start JAX's distributed runtime when the environment names a cluster of several
    processes (:func:`.cluster.cluster_from_env`); None for one process. Called before anything
    else touches JAX, which must not have started its backend yet.

    ``keras.distribution.initialize`` would do the same but sets no timeout (JAX waits 300 s
    to join and again to leave, whatever the cluster), so JAX's own call is made here with the
    cluster's timeout; Keras' only other step, a seed shared by every process, the run fixes
    itself (train.seed)."""
    cluster = cluster_from_env()
    if cluster is None:
        return None
    if cfg.train.strategy != "data_parallel" or keras.config.backend() != "jax":
        raise ConfigError(
            f"{cluster.processes} processes (KERAS_DISTRIBUTION_NUM_PROCESSES) need "
            "train.strategy=data_parallel and KERAS_BACKEND=jax"
        )
    check_reachable(cluster)
    import jax

    # CPU processes exchange gradients over gloo (TCP); GPUs use NCCL whatever this says.
    jax.config.update("jax_cpu_collectives_implementation", "gloo")
    try:
        jax.distributed.initialize(
            cluster.coordinator,
            cluster.processes,
            cluster.process_id,
            # Everything is given: no guessing from SLURM or MPI variables, which would also
            # limit each process to one GPU where the recipe runs one process per host.
            cluster_detection_method="deactivate",
            initialization_timeout=cluster.timeout,
            heartbeat_timeout_seconds=min(cluster.timeout, 100),
            shutdown_timeout_seconds=cluster.timeout,
        )
    except Exception as exc:  # JAX raises its runtime's errors untyped: name the cluster
        raise cluster.error(f"JAX's distributed runtime did not start: {exc}") from None
    if jax.process_count() != cluster.processes:
        raise cluster.error(
            f"the coordinator's cluster has {jax.process_count()} processes, this one was "
            f"started with KERAS_DISTRIBUTION_NUM_PROCESSES={cluster.processes}: start every "
            "process with the same count"
        )
    return cluster


def lost_peer(exc: BaseException) -> ClusterError | None:
    """The one-line error for a collective that failed because another process went away
    (gloo's read error on its socket, the runtime's UNAVAILABLE), or None for any other
    exception: a bug, whose traceback is wanted."""
    cluster = cluster_from_env()
    text = str(exc)
    if cluster is None or not ("Gloo" in text or "UNAVAILABLE" in text):
        return None
    first = text.strip().splitlines()[0][:200] if text.strip() else type(exc).__name__
    return cluster.error(f"another process of the cluster stopped ({first})")


def is_writer(cfg: Config) -> bool:
    """Whether this process writes the run's files: the only process, or process 0 of a
    cluster (every process computes the same model; one copy is written)."""
    return process_shard(cfg)[0] == 0


def barrier(cfg: Config, name: str) -> None:
    """Every process of a cluster waits here for the others (nothing with one process)."""
    if process_shard(cfg)[1] > 1:
        from jax.experimental import multihost_utils

        multihost_utils.sync_global_devices(name)


def process_shard(cfg: Config) -> tuple[int, int]:
    """(this process, processes) of a multi-host data_parallel run; (0, 1) otherwise."""
    if cfg.train.strategy != "data_parallel" or cluster_from_env() is None:
        return 0, 1
    import jax

    return jax.process_index(), jax.process_count()


def synchronise_batch_norm(model: keras.Model, cfg: Config) -> None:
    """With MirroredStrategy's replicas, batch statistics over the global batch, not each
    replica's share: the model then trains as on one device with the same batch. JAX's
    DataParallel needs nothing (and refuses the flag): it computes on the global batch as one
    sharded array, so its batch statistics are global already."""
    if cfg.train.strategy == "mirrored":
        for layer in all_layers(model):
            if isinstance(layer, keras.layers.BatchNormalization):
                layer.synchronized = True
