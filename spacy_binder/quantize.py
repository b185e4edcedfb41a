"""int8 CPU inference for the text encoder: torchao's dynamic int8 linear
layers, compiled ahead of time by AOTInductor.

Why this library (benchmarks/quantize_libraries.py; NCBI-disease test, 2 CPU
cores): torchao quantizes activations per token, which keeps span F1 within
0.1 of fp32, where PyTorch's eager `quantize_dynamic` (per tensor, deprecated)
loses 1.0-3.4 and onnxruntime's dynamic int8 0.6-1.1. torchao's eager path is
slower than fp32 (it quantizes and rescales in separate ops); compiled, those
ops fuse around the int8 matrix products.

Compiled when? torch.compile in the predicting process costs every new process
tens of seconds before its first batch. So `python -m spacy_binder quantize`
exports the encoder (torch.export, dynamic batch and length) and compiles it
once with AOTInductor for its machine's CPU; the package is stored beside the
weights in the encoder's state, and a process that loads the pipeline only
loads a shared library. Where the package does not fit (another CPU lacking
some of the compiling CPU's features, another torch, none stored) the encoder
falls back to torch.compile, with a warning.

The type encoder stays fp32: prediction computes its vectors once per label
set and caches them. Quantized weights are saved as they are, so a quantized
pipeline reloads to identical predictions; training it is refused.
torchao is an optional dependency, needed for int8 only
(`pip install spacy-binder[int8]`).
"""
import importlib
import inspect
import json
import platform
import tempfile
from pathlib import Path
from types import ModuleType
from typing import Callable, Dict, FrozenSet, List, Mapping, NamedTuple, Optional

import torch
from transformers.modeling_outputs import BaseModelOutput

from .errors import TORCHAO_IMPORT_NOISE, silenced, warn_once

with silenced(TORCHAO_IMPORT_NOISE):  # transformers' model code imports torchao when installed
    importlib.import_module("transformers.modeling_utils")
from transformers import AutoModel

QUANTIZATIONS = ("int8",)
# State-dict entries of the ahead-of-time compiled encoder (uint8 tensors): the
# AOTInductor package, and JSON of where it was built (AheadOfTime.target).
PACKAGE_KEY = "_binder_aot.package"
TARGET_KEY = "_binder_aot.target"
ENCODER_INPUTS = ("input_ids", "attention_mask", "token_type_ids")


def _torchao() -> ModuleType:
    try:
        with silenced(TORCHAO_IMPORT_NOISE):
            import torchao.quantization
    except ImportError:
        raise ImportError(
            "An int8 text encoder needs torchao: pip install 'spacy-binder[int8]' "
            "(or pip install torchao)."
        ) from None
    return torchao.quantization


def quantize_overrides(config: Mapping) -> Dict[str, str]:
    """Config overrides that make every binder_ner of a pipeline config int8."""
    names = [name for name, component in config["components"].items() if component.get("factory") == "binder_ner"]
    if not names:
        raise ValueError("The pipeline has no binder_ner component to quantize.")
    return {f"components.{name}.model.text_encoder.quantize": "int8" for name in names}


def check_quantize(quantize: Optional[str]) -> None:
    if quantize is not None and quantize not in QUANTIZATIONS:
        raise ValueError(
            f"Unknown text encoder quantize setting {quantize!r}: use one of "
            f"{list(QUANTIZATIONS)}, or null for fp32."
        )


class AheadOfTime(NamedTuple):
    """An encoder compiled by AOTInductor: the package's bytes, and its target:
    the torch version, machine and CPU flags it was built with (`-march=native`:
    it may use any of them), and the names of its positional inputs."""

    package: bytes
    target: Dict[str, object]

    def misfit(self) -> Optional[str]:
        """Why this process cannot run the package (None: it can)."""
        here = build_target(self.target["inputs"])
        if self.target["torch"] != here["torch"]:
            return f"it was compiled by torch {self.target['torch']}, this is torch {here['torch']}"
        if self.target["machine"] != here["machine"]:
            return f"it was compiled on {self.target['machine']}, this is {here['machine']}"
        if not here["cpu_flags"]:
            return "this CPU's features cannot be read (/proc/cpuinfo)"
        missing = sorted(set(self.target["cpu_flags"]) - set(here["cpu_flags"]))
        if missing:
            return f"this CPU lacks {len(missing)} of the compiling CPU's features ({', '.join(missing[:6])}...)"
        return None

    def load(self) -> Optional[Callable]:
        """The compiled encoder, or None (after a warning) where it does not fit."""
        reason = self.misfit()
        if reason is None:
            from torch.export.pt2_archive._package import AOTICompiledModel

            with tempfile.TemporaryDirectory() as folder:
                path = Path(folder) / "encoder.pt2"
                path.write_bytes(self.package)
                try:
                    # The package's own loader: torch's aoti_load_package would first compile
                    # test programs to find this CPU's vector instructions (1.5 s in every
                    # process), only to log a mismatch that misfit() has already ruled out.
                    return AOTICompiledModel(torch._C._aoti.AOTIModelPackageLoader(str(path), "model", False, 1, -1))
                except Exception as err:  # a package that cannot load must not stop prediction
                    reason = f"loading it failed ({type(err).__name__}: {err})"
        warn_once(
            "aot-misfit",
            f"The int8 text encoder compiled ahead of time does not fit this process: {reason}. "
            "It is compiled here instead (tens of seconds before the first batch); run "
            "`python -m spacy_binder quantize` on this machine to compile it for its CPU.",
        )
        return None


def cpu_flags() -> FrozenSet[str]:
    """This CPU's feature flags (Linux), empty where they cannot be read."""
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return frozenset()
    for line in text.splitlines():
        if line.startswith(("flags", "Features")):
            return frozenset(line.split(":", 1)[1].split())
    return frozenset()


def build_target(inputs: List[str]) -> Dict[str, object]:
    return {"torch": torch.__version__, "machine": platform.machine(), "cpu_flags": sorted(cpu_flags()), "inputs": inputs}


class _Positional(torch.nn.Module):
    """The encoder's last hidden state from positional inputs, as torch.export wants."""

    def __init__(self, transformer: torch.nn.Module, names: List[str]) -> None:
        super().__init__()
        self.transformer, self.names = transformer, names

    def forward(self, *inputs: torch.Tensor) -> torch.Tensor:
        return self.transformer(**dict(zip(self.names, inputs))).last_hidden_state


class Int8Transformer(torch.nn.Module):
    """A Hugging Face encoder with int8 linear layers, where spacy-transformers
    expects the model (`HFWrapper(model_cls=Int8Transformer)`).

    Its state dict is the encoder's own, with torchao's int8 weights, and the
    ahead-of-time compiled encoder when there is one. Loading takes such a
    state as it is, or fp32 weights, which it then quantizes: that is how an
    fp32 pipeline becomes an int8 one at load time (compiled in the process).
    """

    def __init__(self, transformer: torch.nn.Module) -> None:
        super().__init__()
        self.transformer = transformer
        self.config = transformer.config
        self.ahead: Optional[AheadOfTime] = None
        self._compiled: Optional[Callable] = None

    @classmethod
    def from_config(cls, config) -> "Int8Transformer":
        _torchao()  # registers the int8 tensors that torch.load then meets
        return cls(AutoModel.from_config(config))

    @classmethod
    def quantized(cls, transformer: torch.nn.Module) -> "Int8Transformer":
        model = cls(transformer)
        model._quantize()
        return model

    @property
    def device(self) -> torch.device:
        return self.transformer.device

    def _quantize(self) -> None:
        torchao = _torchao()
        torchao.quantize_(self.transformer.eval(), torchao.Int8DynamicActivationInt8WeightConfig())
        self.ahead = self._compiled = None

    def compile_ahead(self) -> None:
        """Export the encoder with a dynamic batch and length and compile it
        with AOTInductor for this machine's CPU (a minute or two, a C++
        compiler needed); kept in the state dict from now on."""
        accepted = inspect.signature(self.transformer.forward).parameters
        names = [name for name in ENCODER_INPUTS if name in accepted]
        # A padded row: traced on a mask of ones, the encoder would drop the mask.
        mask = torch.ones((2, 16), dtype=torch.long)
        mask[1, 8:] = 0
        example = {"input_ids": torch.ones_like(mask), "attention_mask": mask, "token_type_ids": torch.zeros_like(mask)}
        batch, length = torch.export.Dim("batch"), torch.export.Dim("length", max=self.config.max_position_embeddings)
        with torch.no_grad():
            exported = torch.export.export(
                _Positional(self.transformer.eval(), names), tuple(example[name] for name in names),
                dynamic_shapes=(tuple({0: batch, 1: length} for _ in names),),  # forward(*inputs)
            )
        with tempfile.TemporaryDirectory() as folder:
            path = torch._inductor.aoti_compile_and_package(exported, package_path=str(Path(folder) / "encoder.pt2"))
            self.ahead = AheadOfTime(Path(path).read_bytes(), build_target(names))
        self._compiled = None

    def state_dict(self, *args, **kwargs) -> Dict[str, torch.Tensor]:
        state = self.transformer.state_dict(*args, **kwargs)
        if self.ahead is not None:
            target = json.dumps(self.ahead.target).encode("utf8")
            state[PACKAGE_KEY] = torch.frombuffer(bytearray(self.ahead.package), dtype=torch.uint8)
            state[TARGET_KEY] = torch.frombuffer(bytearray(target), dtype=torch.uint8)
        return state

    def load_state_dict(self, state: Mapping[str, torch.Tensor], strict: bool = True, assign: bool = False):
        state = dict(state)
        package, target = state.pop(PACKAGE_KEY, None), state.pop(TARGET_KEY, None)
        is_int8 = any(isinstance(tensor, _torchao().Int8Tensor) for tensor in state.values())
        # assign: int8 weights replace the fp32 placeholders rather than being copied into them.
        result = self.transformer.load_state_dict(state, strict=strict, assign=assign or is_int8)
        if not is_int8:
            self._quantize()
        self.ahead = None
        if package is not None and target is not None:
            self.ahead = AheadOfTime(package.numpy().tobytes(), json.loads(target.numpy().tobytes()))
        self._compiled = None
        return result

    def forward(self, **inputs: torch.Tensor):
        if self._compiled is None:
            loaded = self.ahead.load() if self.ahead is not None else None
            self._compiled = self._positional(loaded) if loaded is not None else torch.compile(self.transformer, dynamic=True)
        try:
            return self._compiled(**inputs)
        except torch._dynamo.exc.BackendCompilerFailed as err:
            raise RuntimeError(
                "[binder_ner] Compiling the int8 text encoder failed. torch.compile "
                "needs a working C++ compiler (e.g. `apt-get install g++`); without one, "
                "load the fp32 pipeline instead."
            ) from err

    def _positional(self, compiled: Callable) -> Callable:
        """The keyword call of a Hugging Face encoder, on the compiled package
        (token types default to zeros, as in the encoder itself). The package
        checks neither strides nor types: it reads contiguous int64 inputs, so
        a batch sliced from a wider one, or of int32 ids, is copied first."""
        names = self.ahead.target["inputs"]

        def forward(**inputs: torch.Tensor) -> BaseModelOutput:
            ids = inputs["input_ids"]
            given = [inputs.get(name) for name in names]
            args = [torch.zeros_like(ids) if x is None else x for x in given]
            args = [x.to(torch.long).contiguous() for x in args]
            return BaseModelOutput(last_hidden_state=compiled(*args))

        return forward
