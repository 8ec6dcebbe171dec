"""The bottom layer: what every stage of any EEG run shares, with no TensorFlow, no data source
and no model in it.

- :mod:`~hmsbrain.core.inputs`: the model inputs' names and what each holds, and the ``Batch``
  that carries them (a mapping by input name);
- :mod:`~hmsbrain.core.mirror`: the left-right mirror of a batch (swap augmentation and TTA);
- :mod:`~hmsbrain.core.predict`: the runtime interface and the prediction loop over any runtime;
- :mod:`~hmsbrain.core.metrics`: the scores;
- :mod:`~hmsbrain.core.predictions`: the one prediction-file schema (OOF and test alike);
- :mod:`~hmsbrain.core.truth`: the per-dataset truth table the ensemble scores against;
- :mod:`~hmsbrain.core.fallback`: the class prior for units that could not be read.

Everything above imports from here; nothing here imports from above (a test parses the
imports and keeps it so).
"""
