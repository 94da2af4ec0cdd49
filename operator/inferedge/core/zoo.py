"""The model zoo's names, per framework, and what a manifest may name as its model.

A custom resource names data, never code: `spec.model.name` is a zoo name, or, with
`spec.model.uri`, only a label for a stored model, which must be in a format that loads without
running anything (`.pt2` for torch, `.keras` for TensorFlow). `package.module:callable` and
local paths stay conveniences of the local CLI commands, which never read a manifest. The
names live here, free of any framework, so the API models and the CRD can check them; the
`dnn` zoos build exactly these (a test keeps the two in step).
"""

from __future__ import annotations

from typing import Final, Literal

Framework = Literal["torch", "tensorflow"]

ZOO: Final[dict[Framework, tuple[str, ...]]] = {
    "torch": (
        "alexnet",
        "densenet121",
        "densenet161",
        "inception_v3",
        "mobilenet_v2",
        "resnet18",
        "resnet50",
        "small_resnet",
        "vgg11",
        "vgg19",
    ),
    "tensorflow": ("inception_v3", "mobilenet_v2", "resnet50", "small_resnet"),
}
STORED_SUFFIX: Final[dict[Framework, str]] = {"torch": ".pt2", "tensorflow": ".keras"}
MODEL_NAME: Final = r"^[a-z][a-z0-9_]{0,62}$"
"""A zoo name or a stored model's label: no path, no module, no `:`."""


NAME_RULE: Final = (
    "name must be a zoo model of its framework (torch: "
    + ", ".join(ZOO["torch"])
    + "; tensorflow: "
    + ", ".join(ZOO["tensorflow"])
    + "), or, with uri, a label for a model of your own"
)
URI_RULE: Final = "uri must be a .pt2 file for torch, a .keras file for tensorflow"


def model_name_error(name: str, framework: Framework, uri: str | None) -> str | None:
    """Why `name` (with `uri`, if any) cannot be a manifest's model, or None when it can; the
    messages are the CRD's CEL messages, so both hosts of a manifest say the same."""
    if uri is not None:
        return None if uri.endswith(STORED_SUFFIX[framework]) else URI_RULE
    return None if name in ZOO[framework] else NAME_RULE
