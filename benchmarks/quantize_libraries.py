"""Which int8 library for binder_ner's CPU inference: measured, not guessed.

python benchmarks/quantize_libraries.py PIPELINE EVAL.spacy [--rounds 3] [--max-docs 0] [--only fp32,...]

Swaps the trained pipeline's text encoder for each candidate in one process and
reports, per candidate, the pipeline's span F1 on EVAL and the words/s of the
bare text encoder (binder_ner's windows and forward pass, batch 64), best of
alternating rounds, as a ratio to fp32:
- torch.ao: eager `torch.ao.quantization.quantize_dynamic` (deprecated);
- torchao: `quantize_(Int8DynamicActivationInt8WeightConfig())`, eager, and
  compiled as spacy-binder runs it (`spacy_binder.quantize.Int8Transformer`;
  its first batches compile, in the F1 pass, before the timed rounds);
- onnxruntime: the encoder exported to ONNX, fused by onnxruntime's BERT
  optimizer, then `onnxruntime.quantization.quantize_dynamic` (and fp32, fused).
Needs `pip install onnxruntime onnx torchao` (not dependencies of spacy-binder).
"""
import copy
import tempfile
from pathlib import Path
from typing import Callable, Dict

import spacy
import torch
import typer
from spacy.training import Corpus
from transformers.modeling_outputs import BaseModelOutput

from common import alternate, predict, run_encoder, score, swap_text_encoder, text_encoder_model
from spacy_binder.quantize import Int8Transformer


class OrtEncoder(torch.nn.Module):
    """An onnxruntime session where spacy-transformers expects the HF model."""

    def __init__(self, path: Path, config) -> None:
        import onnxruntime

        super().__init__()
        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads = torch.get_num_threads()
        self.session = onnxruntime.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        self.names = {i.name for i in self.session.get_inputs()}
        self.config = config
        self.device = torch.device("cpu")

    def forward(self, **inputs: torch.Tensor) -> BaseModelOutput:
        feed = {name: tensor.long().numpy() for name, tensor in inputs.items() if name in self.names}
        (hidden,) = self.session.run(["last_hidden_state"], feed)
        return BaseModelOutput(last_hidden_state=torch.from_numpy(hidden))


def export_onnx(model: torch.nn.Module, folder: Path) -> Dict[str, Path]:
    import onnx
    from onnxruntime.quantization import QuantType, quantize_dynamic
    from onnxruntime.transformers.optimizer import optimize_model

    ids = torch.ones((2, 16), dtype=torch.long)
    raw = folder / "encoder.onnx"
    torch.onnx.export(
        model, (), str(raw), dynamo=False, opset_version=17,
        kwargs={"input_ids": ids, "attention_mask": ids, "token_type_ids": ids * 0},
        input_names=["input_ids", "attention_mask", "token_type_ids"],
        output_names=["last_hidden_state"],
        dynamic_axes={name: {0: "batch", 1: "length"} for name in ("input_ids", "attention_mask", "token_type_ids", "last_hidden_state")},
    )
    config = model.config
    fused = folder / "fused.onnx"
    optimize_model(str(raw), "bert", config.num_attention_heads, config.hidden_size).save_model_to_file(str(fused))
    made = {"onnxruntime fp32 (fused)": fused}
    variants = {
        "onnxruntime int8": {},
        "onnxruntime int8 per-channel": {"per_channel": True},
        "onnxruntime int8 per-channel, MatMul only": {"per_channel": True, "op_types_to_quantize": ["MatMul"]},
    }
    for n, (name, options) in enumerate(variants.items()):
        made[name] = folder / f"int8_{n}.onnx"
        # The fused graph's contrib ops defeat shape inference: their outputs are float.
        quantize_dynamic(
            str(fused), str(made[name]), weight_type=QuantType.QInt8,
            extra_options={"DefaultTensorType": onnx.TensorProto.FLOAT}, **options,
        )
    return made


def candidates(fp32: torch.nn.Module, folder: Path, onnx: bool) -> Dict[str, Callable[[], torch.nn.Module]]:
    def torch_ao(qconfig=torch.ao.quantization.default_dynamic_qconfig) -> torch.nn.Module:
        return torch.ao.quantization.quantize_dynamic(copy.deepcopy(fp32), {torch.nn.Linear: qconfig}, dtype=torch.qint8)

    def torchao() -> torch.nn.Module:
        from torchao.quantization import Int8DynamicActivationInt8WeightConfig, quantize_

        model = copy.deepcopy(fp32)
        quantize_(model, Int8DynamicActivationInt8WeightConfig())
        return model

    made: Dict[str, Callable[[], torch.nn.Module]] = {
        "fp32": lambda: fp32,
        "torch.ao int8": torch_ao,
        "torch.ao int8 per-channel": lambda: torch_ao(torch.ao.quantization.per_channel_dynamic_qconfig),
        "torchao int8": torchao,
        "torchao int8 compiled (spacy-binder)": lambda: Int8Transformer.quantized(copy.deepcopy(fp32)),
    }
    for name, path in (export_onnx(fp32, folder) if onnx else {}).items():
        made[name] = lambda path=path: OrtEncoder(path, fp32.config)
    return made


def main(
    pipeline: Path,
    eval_path: Path,
    rounds: int = 3,
    max_docs: int = 0,
    only: str = typer.Option("", help="Comma-separated candidate names (default: all)"),
    engine: str = typer.Option("x86", help="torch.ao's quantized engine: x86, fbgemm or onednn"),
) -> None:
    torch.backends.quantized.engine = engine
    nlp = spacy.load(pipeline)
    binder = nlp.get_pipe("binder_ner")
    corpus = Corpus(eval_path, limit=max_docs)
    docs = [eg.predicted for eg in corpus(nlp)]
    words = sum(len(doc) for doc in docs)
    fp32 = text_encoder_model(binder).eval()
    with tempfile.TemporaryDirectory() as tmp:
        wanted = [name.strip() for name in only.split(",") if name.strip()]
        made = candidates(fp32, Path(tmp), onnx=not wanted or any(name.startswith("onnxruntime") for name in wanted))
        unknown = set(wanted) - set(made)
        if unknown:
            raise typer.BadParameter(f"Unknown candidates {sorted(unknown)}: choose from {list(made)}.")
        models = {name: make() for name, make in made.items() if not wanted or name in wanted or name == "fp32"}

        def use(name: str) -> None:
            swap_text_encoder(binder, models[name])

        scores = {}
        for name in models:
            use(name)
            scores[name] = score(predict(nlp, corpus)[0], binder.cfg["spans_key"])["f1"]
            typer.echo(f"{name}: F1 {scores[name]:.4f}")
        seconds = alternate({name: lambda _: run_encoder(binder, docs) for name in models}, rounds, prepare=use, words=words)
    base = words / min(seconds["fp32"])
    typer.echo(f"\n{words} words, {len(docs)} docs, torch threads {torch.get_num_threads()}")
    typer.echo("| encoder | span F1 | F1 - fp32 | bare encoder words/s | ÷ fp32 |\n|---|---|---|---|---|")
    for name in models:
        speed = words / min(seconds[name])
        typer.echo(
            f"| {name} | {100 * scores[name]:.1f} | {100 * (scores[name] - scores['fp32']):+.1f} "
            f"| {speed:,.0f} | {speed / base:.2f} |"
        )


if __name__ == "__main__":
    typer.run(main)
