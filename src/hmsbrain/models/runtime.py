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
        if self.distributed:
            return np.asarray(self.model.predict(x, batch_size=n + pad, verbose=0))[:n]
        return np.asarray(self.model.predict_on_batch(x))[:n]


def _data_parallel_devices() -> int:
    """Devices a Keras DataParallel distribution shards each batch over (1 without one)."""
    distribution = keras.distribution.distribution()
    return 1 if distribution is None else int(distribution.device_mesh.devices.size)
