"""A Keras model as a prediction runtime (:class:`hmsbrain.core.predict.Runtime`): training
validates through it, and ``predict.py`` uses it where no ONNX export is wanted."""

from __future__ import annotations

from collections.abc import Mapping

import keras
import numpy as np


class KerasRuntime:
    """A Keras model in this process (training validates through this too)."""

    name = "keras"

    def __init__(self, model: keras.Model, distributed: bool = False) -> None:
        """``distributed``: the model lives in a multi-replica strategy, where
        ``predict_on_batch`` returns only the first replica's share of the batch."""
        self.model, self.distributed = model, distributed
        self._names = tuple(t.name.split(":")[0] for t in self.model.inputs)
        self._forward = None  # the jitted model call of a multi-process run, made once

    @property
    def input_names(self) -> tuple[str, ...]:
        return self._names

    def predict(self, inputs: Mapping[str, np.ndarray]) -> np.ndarray:
        arrays = [inputs[k] for k in self._names]
        n = len(arrays[0])
        # Under Keras' DataParallel (JAX) every batch is sharded over the devices, which must
        # divide it: pad with copies of the last row, and drop their predictions.
        pad = -n % _data_parallel_devices()
        if pad:
            arrays = [np.concatenate([a, np.repeat(a[-1:], pad, axis=0)]) for a in arrays]
        # A one-input model wants its array, not a 1-tuple (Keras warns of the mismatch).
        x = arrays[0] if len(arrays) == 1 else tuple(arrays)
        if _processes() > 1:
            return self._predict_across_processes(arrays)[:n]
        if self.distributed:
            return np.asarray(self.model.predict(x, batch_size=n + pad, verbose=0))[:n]
        return np.asarray(self.model.predict_on_batch(x))[:n]

    def _predict_across_processes(self, arrays: list[np.ndarray]) -> np.ndarray:
        """Under a DataParallel spread over several processes, Keras' predict cannot return
        its outputs (they live partly on other processes' devices). Every process holds the
        whole batch: each places its devices' share of it into one global array, the model
        runs on it as one sharded batch, and every process gathers the whole output."""
        import jax
        from jax.experimental import multihost_utils

        distribution = keras.distribution.distribution()
        mesh = distribution.device_mesh.backend_mesh
        sharding = jax.sharding.NamedSharding(
            mesh, jax.sharding.PartitionSpec(distribution.batch_dim_name)
        )
        xs = [jax.make_array_from_callback(a.shape, sharding, a.__getitem__) for a in arrays]
        if self._forward is None:
            model = self.model
            # Variables are passed in, not closed over: a closure would bake them into the
            # compiled function as constants, stale after the next training step.
            self._forward = jax.jit(
                lambda trainable, rest, x: model.stateless_call(trainable, rest, x)[0]
            )
        trainable = [v.value for v in self.model.trainable_variables]
        rest = [v.value for v in self.model.non_trainable_variables]
        out = self._forward(trainable, rest, xs[0] if len(xs) == 1 else xs)
        return np.asarray(multihost_utils.process_allgather(out, tiled=True))


def _processes() -> int:
    """Processes a Keras DataParallel distribution spans (1 without one)."""
    distribution = keras.distribution.distribution()
    return 1 if distribution is None else int(distribution.num_processes)


def _data_parallel_devices() -> int:
    """Devices a Keras DataParallel distribution shards each batch over (1 without one)."""
    distribution = keras.distribution.distribution()
    return 1 if distribution is None else int(distribution.device_mesh.devices.size)
