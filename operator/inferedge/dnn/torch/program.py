"""Read a `torch.export` `.pt2` archive without running anything it holds.

`torch.export.load` is not safe on a file someone else may have written: it unpickles weights
and constants (`torch.load(weights_only=False)`, `pickle.loads`), `ExportedProgram.module()`
`exec`s the program's guard code, its graph names Python callables that are looked up by
dotted path, and symbolic sizes are parsed by `sympy.sympify`, which `eval`s. This reader keeps
the archive format (so any `torch.export.save` output of a plain network reads back) and closes
each of those doors before torch sees the program:

- tensors are built here from the archive's raw bytes, described by its JSON weight config;
  an entry marked pickled, a custom object, a legacy `.pt` blob or the pickled sample inputs are
  refused or never read;
- every operator the graph calls must be a pure tensor operator (`_PURE_ATEN`, `ALLOWED_OPS`);
  higher-order operators (subgraphs), custom objects and guard code are refused;
- every symbolic expression must use only shape symbols, integers, arithmetic and torch's
  sympy helpers, so `sympify` cannot reach a Python name; every other string in the graph is a
  plain token, so no name can inject code into the module torch.fx generates;
- node metadata (stack traces, module paths) is dropped unread.

Only then is the validated graph handed to torch's deserializer, with the tensors already
built, so it never falls back to an unpickler. Every refusal is one `ArtifactLoadError` line.
"""

from __future__ import annotations

import json
import re
import zipfile
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any, Final

import torch
from torch._export.serde import schema
from torch._export.serde.serialize import ExportedProgramDeserializer, _dict_to_dataclass
from torch.export import ExportedProgram

from inferedge.core.errors import one_line
from inferedge.dnn.artifacts import json_objects
from inferedge.dnn.protocols import ArtifactLoadError

# torch's JSON-to-schema conversion only builds dataclasses of its schema; it is untyped.
_to_schema: Callable[[type, object], Any] = _dict_to_dataclass

# Pure tensor operators: none reads or writes files or calls back into Python.
_PURE_ATEN: Final = frozenset(
    """
    abs acos adaptive_avg_pool1d adaptive_avg_pool2d _adaptive_avg_pool2d
    adaptive_avg_pool3d adaptive_max_pool1d adaptive_max_pool2d add add_ addcdiv addcmul
    addmm alias amax amin argmax argmin asin atan atan2 avg_pool1d avg_pool2d avg_pool3d
    baddbmm batch_norm bmm cat ceil channel_shuffle chunk clamp clamp_ clamp_max clamp_min
    clone constant_pad_nd contiguous conv1d conv2d conv3d conv_transpose1d conv_transpose2d
    convolution cos cosh cummax cumsum detach div dropout elu embedding eq erf erf_ exp exp2
    expand expand_as expm1 feature_dropout flatten flip floor floor_divide fmod full_like
    gather gelu glu group_norm gt hardshrink hardsigmoid hardswish hardtanh hardtanh_ index
    index_select instance_norm layer_norm le leaky_relu lerp linalg_vector_norm linear log
    log1p log2 log_softmax _log_softmax logsigmoid logsumexp lt masked_fill matmul max
    max_pool1d max_pool2d max_pool2d_with_indices max_pool3d maximum mean mean_dim min
    minimum mish mm mul mul_ narrow native_batch_norm _native_batch_norm_legit_no_training
    native_dropout native_group_norm native_layer_norm ne neg norm ones_like permute
    pixel_shuffle pixel_unshuffle pow prelu prod reciprocal relu relu6 relu_ remainder
    repeat reshape reshape_as roll round rsqrt rsub scaled_dot_product_attention select
    sigmoid sigmoid_ sign silu silu_ sin sinh slice softmax _softmax softplus softsign sort
    split split_with_sizes sqrt square squeeze stack std sub sum sym_size t tan tanh tile to
    _to_copy topk transpose true_divide type_as unbind unflatten _unsafe_view unsqueeze
    upsample_bilinear2d upsample_nearest2d var var_mean view view_as where zeros_like
    """.split()  # noqa: SIM905  # reads better than a quoted name a line
)
ALLOWED_OPS: Final = frozenset({"_operator.getitem"})
"""Callables (besides `torch.ops.aten.<pure op>.<overload>`) a graph may call."""

_ATEN_TARGET: Final = re.compile(r"torch\.ops\.aten\.(\w+)\.\w+")
# Symbolic sizes are stored as sympy's `srepr`, e.g. `Mul(Integer(2), Symbol('s3',
# positive=True, integer=True))`. Only these names, quoted shape symbols, integers and
# arithmetic may appear, so `sympify` cannot reach any Python name; `Pow` is left out, as a
# huge power would stall the loader.
_SYMPY_NAMES: Final = (
    "Symbol|Integer|Rational|Add|Mul|Max|Min|Abs|FloorDiv|ModularIndexing|PythonMod|Mod|"
    "CleanDiv|CeilToInt|FloorToInt|CeilDiv|TruncToInt|RoundToInt|IntTrueDiv"
)
_ASSUMPTION: Final = (
    r"(?:positive|negative|nonnegative|nonpositive|integer|real|finite|zero|nonzero)"
    r"=(?:True|False)"
)
_SYMBOL: Final = re.compile(r"[su]\d{1,9}")
_EXPRESSION: Final = re.compile(
    rf"(?:\s*(?:{_SYMPY_NAMES}|{_ASSUMPTION}|'{_SYMBOL.pattern}'|{_SYMBOL.pattern}|\d{{1,19}}"
    r"|[-+*/%(),]))*\s*"
)
_TOKEN: Final = re.compile(r"[A-Za-z0-9_.+-]{0,300}")
_EXPRESSION_KEYS: Final = frozenset({"expr_str"})
# Input and output structures are JSON pytree specs, rebuilt from registered container types
# by name; only the plain containers are accepted.
_SPEC_KEYS: Final = frozenset({"in_spec", "out_spec"})
_CONTAINERS: Final = frozenset(
    {None, "builtins.tuple", "builtins.list", "builtins.dict", "collections.OrderedDict"}
)
_REFUSED_ARGUMENTS: Final = frozenset(
    {"as_graph", "as_custom_obj", "as_custom_objs", "as_operator", "as_string_to_argument"}
)
_DTYPES: Final = {
    schema.ScalarType.FLOAT: torch.float32,
    schema.ScalarType.HALF: torch.float16,
    schema.ScalarType.BFLOAT16: torch.bfloat16,
    schema.ScalarType.DOUBLE: torch.float64,
    schema.ScalarType.LONG: torch.int64,
    schema.ScalarType.INT: torch.int32,
    schema.ScalarType.SHORT: torch.int16,
    schema.ScalarType.CHAR: torch.int8,
    schema.ScalarType.BYTE: torch.uint8,
    schema.ScalarType.BOOL: torch.bool,
}
_MODEL: Final = "models/model.json"
_WEIGHTS: Final = "data/weights/"
_CONSTANTS: Final = "data/constants/"
_WEIGHTS_CONFIG: Final = f"{_WEIGHTS}model_weights_config.json"
_CONSTANTS_CONFIG: Final = f"{_CONSTANTS}model_constants_config.json"
# Written by torch.export.save and never read here (sample inputs are pickled).
_IGNORED: Final = frozenset(
    {
        "archive_format",
        "archive_version",
        "byteorder",
        ".data/version",
        ".data/serialization_id",
        "data/sample_inputs/model.pt",
    }
)


def load_program(path: Path, label: str) -> ExportedProgram:
    """The program in the `.pt2` archive at `path`, read as the module docstring says; a
    refusal is one `ArtifactLoadError` line starting with `label`."""
    name = label
    try:
        with zipfile.ZipFile(path) as archive:
            entries = _entries(archive, name)
            if entries.get("byteorder", b"little").strip() != b"little":
                raise ArtifactLoadError(f"{name}: big-endian archives are not supported")
            program = _graph(entries[_MODEL], name)
            state_dict = _tensors(entries, _WEIGHTS, _WEIGHTS_CONFIG, name)
            constants = _tensors(entries, _CONSTANTS, _CONSTANTS_CONFIG, name)
    except ArtifactLoadError:
        raise
    except (OSError, zipfile.BadZipFile, KeyError, ValueError, RecursionError) as exc:
        raise ArtifactLoadError(f"{name}: not a torch.export archive: {one_line(exc)}") from None
    try:
        serialized = _to_schema(schema.ExportedProgram, program)
        return ExportedProgramDeserializer().deserialize(
            serialized, state_dict, constants, example_inputs=None
        )
    except Exception as exc:  # torch's deserializer raises many types for malformed graphs
        raise ArtifactLoadError(f"{name}: cannot rebuild the program: {one_line(exc)}") from None


def _entries(archive: zipfile.ZipFile, name: str) -> dict[str, bytes]:
    """The archive's entries by path below its single top-level folder; unknown ones refused."""
    entries: dict[str, bytes] = {}
    for info in archive.infolist():
        if info.is_dir():
            continue
        _, sep, inner = info.filename.partition("/")
        if not sep:
            raise ArtifactLoadError(f"{name}: entry {info.filename[:80]!r} is outside a folder")
        if inner in _IGNORED:
            continue
        if inner not in (_MODEL, _WEIGHTS_CONFIG, _CONSTANTS_CONFIG) and not (
            re.fullmatch(r"data/(weights/weight|constants/tensor)_\d{1,9}", inner)
        ):
            raise ArtifactLoadError(
                f"{name}: entry {inner[:80]!r} is not a plain tensor or the program "
                "(pickled objects, custom objects and extra files are refused)"
            )
        entries[inner] = archive.read(info)
    for required in (_MODEL, _WEIGHTS_CONFIG, _CONSTANTS_CONFIG):
        if required not in entries:
            raise ArtifactLoadError(f"{name}: the archive has no {required}")
    return entries


def _graph(raw: bytes, name: str) -> dict[str, Any]:
    """The program's JSON, checked; node metadata dropped."""
    try:
        program = json.loads(raw)
    except (ValueError, RecursionError) as exc:
        raise ArtifactLoadError(f"{name}: {_MODEL} is not JSON: {one_line(exc)}") from None
    if not isinstance(program, dict):
        raise ArtifactLoadError(f"{name}: {_MODEL} must hold a JSON object")
    if program.get("guards_code"):
        raise ArtifactLoadError(f"{name}: programs with guard code are refused (it is executed)")
    graph = program.get("graph_module", {}).get("graph", {})
    for node in graph.get("nodes", ()):
        node["metadata"] = {}
        target = node.get("target")
        if not _allowed_target(target):
            raise ArtifactLoadError(
                f"{name}: the graph calls {str(target)[:120]!r}, which is not one of the pure "
                "tensor operators inferedge loads (see inferedge.dnn.torch.program)"
            )
    for symbol in program.get("range_constraints", {}):
        if not _SYMBOL.fullmatch(symbol):
            raise ArtifactLoadError(f"{name}: range constraint {symbol[:80]!r} is not a symbol")
    for key, value in _strings(program):
        if key in _REFUSED_ARGUMENTS:
            raise ArtifactLoadError(f"{name}: {key} arguments are refused")
        if key in _SPEC_KEYS and value is not None:
            _check_spec(value, key, name)
            continue
        rule = _EXPRESSION if key in _EXPRESSION_KEYS else _TOKEN
        if value is not None and not rule.fullmatch(value):
            raise ArtifactLoadError(
                f"{name}: {key} {value[:80]!r} is not a plain name or shape expression"
            )
    return program


def _check_spec(value: str, key: str, name: str) -> None:
    try:
        spec = json.loads(value)
    except (ValueError, RecursionError):
        raise ArtifactLoadError(f"{name}: {key} is not a JSON pytree spec") from None
    for item in json_objects(spec):
        if "type" in item and item["type"] not in _CONTAINERS:
            raise ArtifactLoadError(
                f"{name}: {key} holds a {str(item['type'])[:80]!r}; only tuples, lists and "
                "dicts are accepted"
            )


def _allowed_target(target: object) -> bool:
    if not isinstance(target, str):
        return False
    if target in ALLOWED_OPS:
        return True
    match = _ATEN_TARGET.fullmatch(target)
    return match is not None and match.group(1) in _PURE_ATEN


def _strings(value: object, key: str = "") -> Iterator[tuple[str, str | None]]:
    """Every (key, string) pair in a JSON value, keys included; refused argument kinds are
    yielded with None so that the caller sees them whatever they hold."""
    if isinstance(value, str):
        yield key, value
    elif isinstance(value, list):
        for item in value:
            yield from _strings(item, key)
    elif isinstance(value, dict):
        for inner, item in value.items():
            yield "key", inner
            if inner in _REFUSED_ARGUMENTS:
                yield inner, None
            elif inner != "metadata":
                yield from _strings(item, inner)


def _tensors(
    entries: Mapping[str, bytes], folder: str, config_name: str, name: str
) -> dict[str, torch.Tensor]:
    """The tensors a payload config describes, each a view of its raw-bytes entry."""
    try:
        config = json.loads(entries[config_name]).get("config", {})
    except (ValueError, AttributeError) as exc:
        raise ArtifactLoadError(f"{name}: {config_name} is not a JSON object: {exc}") from None
    if not isinstance(config, dict):
        raise ArtifactLoadError(f"{name}: {config_name}: 'config' must be an object")
    tensors: dict[str, torch.Tensor] = {}
    storages: dict[str, torch.Tensor] = {}
    for fqn, meta in config.items():
        where = f"{name}: {config_name}: {str(fqn)[:80]!r}"
        if not isinstance(meta, dict) or meta.get("use_pickle") is not False:
            raise ArtifactLoadError(f"{where}: pickled tensors are refused")
        tensors[fqn] = _tensor(entries, folder, meta, storages, where)
    return tensors


def _tensor(
    entries: Mapping[str, bytes],
    folder: str,
    meta: Mapping[str, Any],
    storages: dict[str, torch.Tensor],
    where: str,
) -> torch.Tensor:
    tensor_meta = meta.get("tensor_meta") or {}
    try:
        dtype = _DTYPES[schema.ScalarType(tensor_meta["dtype"])]
        sizes = [int(s["as_int"]) for s in tensor_meta["sizes"]]
        strides = [int(s["as_int"]) for s in tensor_meta["strides"]]
        offset = int(tensor_meta["storage_offset"]["as_int"])
        path = folder + str(meta["path_name"])
    except (KeyError, TypeError, ValueError):
        raise ArtifactLoadError(
            f"{where}: expected a strided CPU tensor of a plain dtype with integer sizes"
        ) from None
    if path not in entries:
        raise ArtifactLoadError(f"{where}: its data entry {path!r} is missing")
    if path not in storages:
        raw = entries[path]
        if len(raw) % dtype.itemsize:
            raise ArtifactLoadError(f"{where}: {len(raw)} bytes is not a whole number of items")
        storages[path] = torch.frombuffer(bytearray(raw), dtype=dtype) if raw else torch.empty(0)
    storage = storages[path]
    if storage.dtype != dtype and storage.numel():
        raise ArtifactLoadError(f"{where}: its data entry is shared with another dtype")
    if any(s < 0 for s in sizes) or any(s < 0 for s in strides) or len(sizes) != len(strides):
        raise ArtifactLoadError(f"{where}: negative or mismatched sizes and strides")
    numel = 1
    for size in sizes:
        numel *= size
    if numel == 0:
        return torch.zeros(sizes, dtype=dtype)
    last = offset + sum((size - 1) * stride for size, stride in zip(sizes, strides, strict=True))
    if offset < 0 or last >= storage.numel():
        raise ArtifactLoadError(f"{where}: its sizes reach past the end of its data")
    tensor = storage.as_strided(sizes, strides, offset)
    return torch.nn.Parameter(tensor, requires_grad=False) if meta.get("is_param") else tensor
