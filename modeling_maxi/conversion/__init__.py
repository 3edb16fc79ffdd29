# SPDX-License-Identifier: Apache-2.0
"""Convert OpenAI-format CLIP checkpoints (the MAXI / ViFi-CLIP release, plain OpenAI CLIP, open_clip "OpenAI" models)
into a [`MaxiVideoCLIPModel`] folder that `AutoModel.from_pretrained` can read.

The conversion is split in small steps that can be used (and tested) one by one, one module per concern:

1. `safe_loading`: [`load_checkpoint_file`] reads an *untrusted* file safely (`torch.load(weights_only=True)`,
   `torch.jit.load` for TorchScript archives only, or safetensors); anything that needs arbitrary code to unpickle is
   refused before it runs. [`extract_state_dict`] unwraps training containers and the DDP `module.` prefix.
2. `key_mapping`: [`detect_layout`] names the layout (authors', OpenAI, transformers); [`map_state_dict`] renames
   every tensor to transformers' CLIP names and checks names and shapes against the target model.
3. `converting`: [`convert_checkpoint`] puts it together with a base CLIP (tensors the checkpoint lacks come from the
   base; optional weight-space ensemble); [`build_processor_from_base`] makes the processor, which alone decides how
   many frames are sampled; [`save_converted_model`] writes a Hub-ready folder; [`push_converted_to_hub`] uploads it.
4. `report`: the [`ConversionReport`] saved as `conversion_report.json` and the converted model's card.
5. `errors`: one exception class per problem, all subclasses of [`CheckpointConversionError`] (a `ValueError`).
"""

from .converting import (
    VIDEO_CONFIG_FIELDS,
    build_processor_from_base,
    convert_checkpoint,
    push_converted_to_hub,
    save_converted_model,
)
from .errors import (
    CheckpointConversionError,
    CorruptCheckpointError,
    ShapeMismatchError,
    UnexpectedKeysError,
    UnknownLayoutError,
    UnsafeCheckpointError,
)
from .key_mapping import (
    LAYOUT_MAXI,
    LAYOUT_OPENAI,
    LAYOUT_TRANSFORMERS,
    LAYOUTS,
    MappedWeights,
    detect_layout,
    map_state_dict,
)
from .report import (
    AUTHORS_REPOSITORY,
    REPORT_FILE_NAME,
    ConversionReport,
    conversion_provenance,
    file_sha256,
    render_conversion_model_card,
)
from .safe_loading import (
    FORMAT_SAFETENSORS,
    FORMAT_TORCH,
    FORMAT_TORCHSCRIPT,
    INERT_METADATA_GLOBALS,
    extract_state_dict,
    load_checkpoint_file,
)

__all__ = [
    "AUTHORS_REPOSITORY",
    "FORMAT_SAFETENSORS",
    "FORMAT_TORCH",
    "FORMAT_TORCHSCRIPT",
    "INERT_METADATA_GLOBALS",
    "LAYOUTS",
    "LAYOUT_MAXI",
    "LAYOUT_OPENAI",
    "LAYOUT_TRANSFORMERS",
    "REPORT_FILE_NAME",
    "VIDEO_CONFIG_FIELDS",
    "CheckpointConversionError",
    "ConversionReport",
    "CorruptCheckpointError",
    "MappedWeights",
    "ShapeMismatchError",
    "UnexpectedKeysError",
    "UnknownLayoutError",
    "UnsafeCheckpointError",
    "build_processor_from_base",
    "conversion_provenance",
    "convert_checkpoint",
    "detect_layout",
    "extract_state_dict",
    "file_sha256",
    "load_checkpoint_file",
    "map_state_dict",
    "push_converted_to_hub",
    "render_conversion_model_card",
    "save_converted_model",
]
