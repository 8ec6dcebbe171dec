"""Training loss: the competition's KL divergence, differentiable, in Keras ops."""

from __future__ import annotations

import keras
from keras import ops

# Smallest predicted probability inside the loss. Larger than the metric's 1e-15 so gradients
# stay finite in float16; the reported CV always uses hmsbrain.core.metrics on the real outputs.
LOSS_EPSILON = 1e-7


@keras.saving.register_keras_serializable(package="hmsbrain")
def kl_divergence_loss(y_true, y_pred):
    """Per-sample KL(y_true || y_pred): terms with a zero target count as 0, as in the metric."""
    y_true = ops.cast(y_true, "float32")
    y_pred = ops.clip(ops.cast(y_pred, "float32"), LOSS_EPSILON, 1.0)
    safe_true = ops.where(y_true > 0, y_true, 1.0)
    terms = ops.where(y_true > 0, y_true * (ops.log(safe_true) - ops.log(y_pred)), 0.0)
    return ops.sum(terms, axis=-1)
