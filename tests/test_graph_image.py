"""preprocess.spectrogram=graph: the model computes its image from the clean montage. What it
computes equals the CPU pipeline's image at the full recipe, and such a run trains, exports to
ONNX (parity-checked) and predicts like any other."""

from __future__ import annotations

import keras
import numpy as np
import pytest

from hmsbrain.config import HMS_FULL_RECIPE, load_config, recipe_path
from hmsbrain.core.inputs import ALL_INPUTS, model_inputs
from hmsbrain.data.sources import open_dataset
from hmsbrain.models.registry import GraphImage, build_model


def test_the_graph_image_is_the_cpu_image_at_the_full_recipe(hms_sample_dir, tmp_path) -> None:
    """The 9 real train windows: the image the graph model builds from the montage and the
    Kaggle tiles equals the image the CPU pipeline feeds, within 1e-4 (512 x 512 x 3)."""

    def cfg(*extra: str):
        return load_config(
            recipe_path(HMS_FULL_RECIPE),
            [
                f"data.data_dir={hms_sample_dir}",
                f"data.cache_dir={tmp_path}",
                "model.weights=none",
                "data.storage=windows",
                *extra,
            ],
        )

    graph_cfg = cfg("preprocess.spectrogram=graph")
    names = model_inputs(graph_cfg.model, graph_cfg.preprocess)
    assert names == ("montage", "kaggle", "raw")
    data = open_dataset(graph_cfg, "train")
    rows = np.arange(len(data))
    inputs = data.inputs(rows, names)
    graph = GraphImage(
        graph_cfg.preprocess,
        data.montage.groups,
        inputs["montage"].shape[1:],
        inputs["kaggle"].shape[1:],
    )
    model = build_model(graph_cfg.model, None, inputs["raw"].shape[1:], 6, 40.0, None, graph)
    image_of = keras.Model(model.inputs, model.get_layer("image").output)
    built = np.asarray(image_of.predict([inputs[n] for n in names], verbose=0))
    cpu = open_dataset(cfg(), "train").inputs(rows, ALL_INPUTS)["image"]
    assert built.shape == cpu.shape == (9, 512, 512, 3)
    np.testing.assert_allclose(built, cpu, atol=1e-4)


@pytest.mark.slow
def test_a_graph_run_trains_exports_and_predicts(small_demo, tmp_path) -> None:
    from hmsbrain.inference.export import export_fold
    from hmsbrain.inference.predict import predict_run
    from hmsbrain.training.loop import train_fold
    from tests.conftest import tiny_config

    cfg = tiny_config(small_demo, tmp_path)
    cfg.preprocess.spectrogram = "graph"
    summary = train_fold(cfg, fold=0)
    fold = tmp_path / "outputs" / "effnetv2" / "fold0"
    model = keras.saving.load_model(fold / "model.keras")
    assert [t.name.split(":")[0] for t in model.inputs] == ["montage", "kaggle", "raw"]
    assert np.isfinite(summary["cv_kl"])
    report = export_fold(fold)
    assert report["inputs"] == ["montage", "kaggle", "raw"]
    assert report["parity"]["logits_rel_err"] <= 1e-4
    run = tmp_path / "outputs" / "effnetv2"
    by_runtime = {
        k: predict_run(run, str(small_demo), "test", runtime=k, write=False).frame
        for k in ("keras", "onnx")
    }
    np.testing.assert_allclose(
        by_runtime["onnx"].iloc[:, 2:], by_runtime["keras"].iloc[:, 2:], atol=1e-5
    )
