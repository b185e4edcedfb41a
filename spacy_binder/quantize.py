"""int8 CPU inference for the text encoder: torchao's dynamic int8 linear
layers, compiled by torch.compile.

Why this library (benchmarks/quantize_libraries.py; NCBI-disease test, 2 CPU
cores): torchao quantizes activations per token, which keeps span F1 within
0.1 of fp32, where PyTorch's eager `quantize_dynamic` (per tensor, deprecated)
loses 1.0-3.4 and onnxruntime's dynamic int8 0.6-1.1. torchao's eager path is
slower than fp32 (it quantizes and rescales in separate ops); compiled, those
ops fuse around the int8 matrix products. The price: the first batches of a
process compile (tens of seconds, a C++ compiler needed), once per process.

The type encoder stays fp32: prediction computes its vectors once per label
set and caches them. Quantized weights are saved as they are, so a quantized
pipeline reloads to identical predictions; training it is refused.
torchao is an optional dependency, needed for int8 only
(`pip install spacy-binder[int8]`).
"""
import importlib
from types import ModuleType
from typing import Dict, Mapping, Optional

import torch

from .errors import TORCHAO_IMPORT_NOISE, silenced

with silenced(TORCHAO_IMPORT_NOISE):  # transformers' model code imports torchao when installed
    importlib.import_module("transformers.modeling_utils")
from transformers import AutoModel

QUANTIZATIONS = ("int8",)
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


class Int8Transformer(torch.nn.Module):
    """A Hugging Face encoder with int8 linear layers, where spacy-transformers
    expects the model (`HFWrapper(model_cls=Int8Transformer)`).

    Its state dict is the encoder's own, with torchao's int8 weights. Loading
    takes such a state as it is, or fp32 weights, which it then quantizes:
    that is how an fp32 pipeline becomes an int8 one at load time.
    """

    def __init__(self, transformer: torch.nn.Module) -> None:
        super().__init__()
        self.transformer = transformer
        self.config = transformer.config
        self._compiled = None

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
        self._compiled = None

    def state_dict(self, *args, **kwargs) -> Dict[str, torch.Tensor]:
        return self.transformer.state_dict(*args, **kwargs)

    def load_state_dict(self, state: Mapping[str, torch.Tensor], strict: bool = True, assign: bool = False):
        is_int8 = any(isinstance(tensor, _torchao().Int8Tensor) for tensor in state.values())
        # assign: int8 weights replace the fp32 placeholders rather than being copied into them.
        result = self.transformer.load_state_dict(state, strict=strict, assign=assign or is_int8)
        if not is_int8:
            self._quantize()
        self._compiled = None
        return result

    def forward(self, **inputs: torch.Tensor):
        if self._compiled is None:
            self._compiled = torch.compile(self.transformer, dynamic=True)
        try:
            return self._compiled(**inputs)
        except torch._dynamo.exc.BackendCompilerFailed as err:
            raise RuntimeError(
                "[binder_ner] Compiling the int8 text encoder failed. torch.compile "
                "needs a working C++ compiler (e.g. `apt-get install g++`); without one, "
                "load the fp32 pipeline instead."
            ) from err
