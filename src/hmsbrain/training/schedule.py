"""The learning-rate plan of a run's two stages, on Keras' own cosine decay."""

from __future__ import annotations

from dataclasses import dataclass

import keras

from hmsbrain.config import TrainConfig


@dataclass
class Plan:
    """Epoch and step layout of the two stages, and the learning rate at every step."""

    stage1_epochs: int
    stage2_epochs: int
    stage1_steps: int  # per epoch
    stage2_steps: int
    cfg: TrainConfig

    @property
    def epochs(self) -> int:
        return self.stage1_epochs + self.stage2_epochs

    def stage(self, epoch: int) -> int:
        return 1 if epoch < self.stage1_epochs else 2

    def __post_init__(self) -> None:
        c = self.cfg
        total1 = self.stage1_epochs * self.stage1_steps
        warm = max(1, int(c.warmup_frac * total1))
        self._total1 = total1
        # Keras' cosine decay: a linear warm-up to the peak, then down to alpha * peak = min_lr.
        self._stage1 = keras.optimizers.schedules.CosineDecay(
            initial_learning_rate=c.lr / warm,
            decay_steps=max(1, total1 - warm),
            alpha=c.min_lr / c.lr,
            warmup_target=c.lr,
            warmup_steps=warm,
        )
        peak2 = c.lr * c.stage2_lr_scale
        self._stage2 = keras.optimizers.schedules.CosineDecay(
            initial_learning_rate=peak2,
            decay_steps=max(1, self.stage2_epochs * self.stage2_steps),
            alpha=min(1.0, c.min_lr / peak2),
        )

    def lr(self, step: int) -> float:
        """Warm-up then cosine decay in stage 1; a lower cosine restart in stage 2."""
        if step < self._total1:
            return float(self._stage1(step))
        return float(self._stage2(step - self._total1))


class StepLR(keras.callbacks.Callback):
    """Sets the optimizer's learning rate from the plan before every step (resumable: the step
    count is the optimizer's own, saved in the checkpoint)."""

    def __init__(self, plan: Plan) -> None:
        super().__init__()
        self.plan = plan

    def on_train_batch_begin(self, batch: int, logs: dict | None = None) -> None:
        step = int(self.model.optimizer.iterations.numpy())
        self.model.optimizer.learning_rate.assign(self.plan.lr(step))
