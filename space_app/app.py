# SPDX-License-Identifier: Apache-2.0
"""Gradio Space for MAXI: zero-shot action recognition, MAXI next to CLIP, with patch-to-text similarity heatmaps.

Run locally with `python -m space_app.app` (or `python space_app/app.py`). Settings come from `MAXI_*` environment
variables (see `space_app/config.py`); `MAXI_MODEL_ID` and `MAXI_BASE_MODEL_ID` take a Hub id or a local folder.
"""

from __future__ import annotations

import importlib.util
import logging
import os
import sys
import time


def _register_script_package() -> None:
    """
    Run as a script (`python space_app/app.py`, or `python app.py` at the root of the Space repository, whatever the
    folder is called): register this folder as the `space_app` package so the imports below work in both layouts.
    """
    if "space_app" in sys.modules:
        return
    folder = os.path.dirname(os.path.abspath(__file__))
    spec = importlib.util.spec_from_file_location(
        "space_app", os.path.join(folder, "__init__.py"), submodule_search_locations=[folder]
    )
    package = importlib.util.module_from_spec(spec)
    sys.modules["space_app"] = package
    spec.loader.exec_module(package)


if __package__ in (None, ""):
    _register_script_package()

import gradio as gr  # noqa: E402

from space_app.config import (  # noqa: E402
    BUILTIN_LABEL_SETS,
    CUSTOM_LABEL_SET,
    EXAMPLES_DIR,
    SPACE_EXAMPLES,
    SpaceConfig,
)
from space_app.inference import LABEL_SET_CHOICES, ModelLoadError, SpacePredictor  # noqa: E402
from space_app.inputs import SpaceInputError  # noqa: E402

logger = logging.getLogger(__name__)

CLASSIFY_API_NAME = "classify"
INPUT_NAMES = ("video", "label_set", "custom_labels", "heatmap_label")

INTRO = """
# MAXI: zero-shot action recognition

**MAXI** (*MAtch, eXpand and Improve*, ICCV 2023) adapts CLIP to video without any ground-truth labels. Upload a
short clip (or record one, or click one of the examples below), pick a label set, and compare MAXI's top-{top_k}
actions with the zero-shot CLIP it started from. The gallery shows, on the frames MAXI saw, how similar each image
patch is to the heatmap label (warm = high similarity; colours are scaled jointly over all frames).
"""


def _summary(prediction) -> str:
    video = prediction.video
    return (
        f"Heatmap label: **{prediction.heatmap_label}** · {prediction.num_labels} candidate labels · "
        f"{prediction.num_frames} frames sampled from a {video.duration_s:.1f} s, "
        f"{video.width}×{video.height} video"
    )


def _classify_handler(predictor: SpacePredictor):
    """The `"/classify"` callback: one request through `predictor`, input errors shown to the user as `gr.Error`."""

    def classify(video, label_set, custom_labels, heatmap_label):
        started = time.perf_counter()
        try:
            prediction = predictor.predict(video, label_set, custom_labels, heatmap_label)
        except SpaceInputError as err:
            raise gr.Error(str(err), title="Invalid input", print_exception=False) from err
        except ModelLoadError as err:
            logger.exception("Model loading failed")
            raise gr.Error(str(err), title="Model unavailable", print_exception=False) from err
        logger.info(
            "Classified a %.1f s video among %d labels in %.2f s",
            prediction.video.duration_s,
            prediction.num_labels,
            time.perf_counter() - started,
        )
        return prediction.maxi_scores, prediction.base_scores, prediction.heatmaps, _summary(prediction)

    return classify


def _input_column(config: SpaceConfig) -> dict[str, gr.components.Component]:
    """The request's inputs (video, label set, custom labels, heatmap label) and the button, in the current column."""
    inputs = {
        "video": gr.Video(sources=["upload", "webcam"], label="Video", elem_id="video-input"),
        "label_set": gr.Radio(
            choices=list(LABEL_SET_CHOICES),
            value=next(iter(BUILTIN_LABEL_SETS)),
            label="Label set",
            elem_id="label-set",
        ),
        "custom_labels": gr.Textbox(
            label=f"Custom labels (one per line or comma-separated, at most {config.max_labels})",
            lines=5,
            placeholder="playing guitar\nriding a bike\ncooking",
            visible=False,
            elem_id="custom-labels",
        ),
        "heatmap_label": gr.Textbox(
            label="Heatmap label", placeholder="leave empty for MAXI's top prediction", elem_id="heatmap-label"
        ),
        "button": gr.Button("Recognise action", variant="primary", elem_id="classify-button"),
    }
    gr.Markdown(
        f"Limits: {config.max_file_size_mb:g} MB, {config.max_duration_s:g} s per video. "
        f"Models: MAXI `{config.model_id}`, CLIP `{config.base_model_id}`."
    )
    return inputs


def _output_column(config: SpaceConfig) -> list[gr.components.Component]:
    """Both models' top-k panels, the heatmap gallery and the summary line, in the current column."""
    with gr.Row():
        maxi_output = gr.Label(num_top_classes=config.top_k, label="MAXI", elem_id="maxi-label")
        base_output = gr.Label(num_top_classes=config.top_k, label="CLIP (zero-shot baseline)", elem_id="clip-label")
    gallery = gr.Gallery(
        label="MAXI patch-to-text similarity (warm = high)",
        columns=4,
        object_fit="contain",
        height="auto",
        format="png",
        elem_id="heatmap-gallery",
    )
    return [maxi_output, base_output, gallery, gr.Markdown(elem_id="summary")]


def _examples(inputs, outputs, classify) -> gr.Examples | None:
    """The shipped example clips (`space_app/examples/`): one click fills the inputs and classifies."""
    examples = [example.inputs(EXAMPLES_DIR) for example in SPACE_EXAMPLES if (EXAMPLES_DIR / example.file).is_file()]
    if not examples:
        logger.warning("No example clip in %s (make them with scripts/make_space_examples.py).", EXAMPLES_DIR)
        return None
    return gr.Examples(
        examples=examples,
        inputs=[inputs[name] for name in INPUT_NAMES],
        outputs=outputs,
        fn=classify,
        cache_examples=False,
        run_on_click=True,
        api_visibility="private",
        label="Examples: synthetic clips (CC0), one click classifies",
        elem_id="examples",
    )


def build_demo(config: SpaceConfig | None = None, predictor: SpacePredictor | None = None) -> gr.Blocks:
    """
    Builds the Space's `gr.Blocks` (models load lazily on the first request).

    Args:
        config (`SpaceConfig`, *optional*): Settings; read from the environment when `None`.
        predictor (`SpacePredictor`, *optional*): Runs the requests; built from `config` when `None`.

    The `"/classify"` endpoint takes `(video, label_set, custom_labels, heatmap_label)` and returns MAXI's and
    CLIP's top labels (`gr.Label` payloads), the heatmap gallery and a one-line summary.
    """
    if config is None:
        config = predictor.config if predictor is not None else SpaceConfig.from_env()
    if not isinstance(config, SpaceConfig):
        raise TypeError(f"config must be a SpaceConfig, got {type(config).__name__}")
    if predictor is None:
        predictor = SpacePredictor(config)
    elif predictor.config != config:
        raise ValueError("predictor.config differs from config; pass only one of them")

    with gr.Blocks(title="MAXI zero-shot action recognition", analytics_enabled=False) as demo:
        gr.Markdown(INTRO.format(top_k=config.top_k))
        with gr.Row():
            with gr.Column(scale=1):
                inputs = _input_column(config)
            with gr.Column(scale=2):
                outputs = _output_column(config)
        inputs["label_set"].change(
            lambda label_set: gr.Textbox(visible=label_set == CUSTOM_LABEL_SET),
            inputs=inputs["label_set"],
            outputs=inputs["custom_labels"],
            api_visibility="private",
        )
        classify = _classify_handler(predictor)
        inputs["button"].click(
            classify,
            inputs=[inputs[name] for name in INPUT_NAMES],
            outputs=outputs,
            api_name=CLASSIFY_API_NAME,
        )
        _examples(inputs, outputs, classify)
    return demo


def main() -> None:
    """Launches the Space (host and port from `GRADIO_SERVER_NAME` / `GRADIO_SERVER_PORT`, as Gradio reads them)."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    config = SpaceConfig.from_env()
    logger.info("Serving MAXI %s against CLIP %s", config.model_id, config.base_model_id)
    # Gradio's own upload cap, well above the Space's limit, only stops huge files from filling the disk; files
    # between the two limits get the Space's clearer message.
    build_demo(config).queue(default_concurrency_limit=1).launch(max_file_size=4 * config.max_file_size_bytes)


if __name__ == "__main__":
    main()
