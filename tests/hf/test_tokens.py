"""BOS, EOS and special-token names as the model's own tokenizer has them: in the packed training rows and in an
export that transformers reads back."""

import json

import pytest
import torch

from syllabus.data import open_batches
from syllabus.data.tokenizer import bos_id, special_token_names, train_tokenizer
from syllabus.export import export_hf
from syllabus.hf.weights import load_hf_model
from tests.hf.conftest import TEXTS, hf_folder, llama_tokenizer, qwen_tokenizer

DOCS = ["The quick brown fox jumps.", "342 + 567 = 909", "def add(a, b): return a + b", "He starts pulling."] * 30


def packed_tokens(tmp_path, tok, rows=12, seq_len=31):
    (tmp_path / "docs.jsonl").write_text("".join(json.dumps({"text": t}) + "\n" for t in DOCS))
    batches = open_batches({"docs": str(tmp_path / "docs.jsonl")}, {"docs": 1.0}, tok, shuffle=False)
    batch = batches.next_batch(rows, seq_len)
    return torch.cat([batch["input_ids"], batch["labels"][:, -1:]], dim=1)  # the packed rows, seq_len + 1 each


def test_bos_comes_from_the_tokenizers_post_processor():
    assert bos_id(llama_tokenizer()) == 1
    assert bos_id(qwen_tokenizer()) is None
    assert bos_id(train_tokenizer(TEXTS, 300)) is None


def test_a_llama_tokenizer_starts_every_document_with_bos_in_the_packed_rows(tmp_path):
    tok = llama_tokenizer()
    bos, eos = tok.token_to_id("<s>"), tok.token_to_id("</s>")
    rows = packed_tokens(tmp_path, tok)
    assert rows[0, 0] == bos  # the first row starts a document
    flat = rows.flatten()
    after_eos = flat[1:][flat[:-1] == eos]
    assert len(after_eos) > 5 and bool((after_eos == bos).all())
    assert int((flat == bos).sum()) == int((flat[:-1] == eos).sum()) + 1  # one BOS per document, no more


def test_a_qwen_tokenizer_adds_no_bos_and_separates_documents_with_its_own_eos(tmp_path):
    tok = qwen_tokenizer()
    eos = tok.token_to_id("<|endoftext|>")
    rows = packed_tokens(tmp_path, tok)
    encoded = [tok.encode(d, add_special_tokens=False).ids + [eos] for d in set(DOCS)]
    assert any(rows[0, :len(doc)].tolist() == doc for doc in encoded)  # a document, nothing in front
    flat = rows.flatten()
    after_eos = flat[1:][flat[:-1] == eos]
    starts = {tok.encode(d, add_special_tokens=False).ids[0] for d in DOCS}
    assert len(after_eos) > 5 and set(after_eos.tolist()) <= starts


def test_an_export_keeps_a_llama2_tokenizers_own_names_and_bos(tmp_path):
    transformers = pytest.importorskip("transformers")
    tok = llama_tokenizer()
    assert special_token_names(tok) == {"bos": "<s>", "eos": "</s>", "unk": "<unk>", "pad": "</s>"}
    model = load_hf_model(hf_folder(tmp_path, "llama_tied"))
    model.config.architecture = None  # as if syllabus trained it from scratch with this tokenizer
    out = export_hf(model, tok, tmp_path / "export")
    config = json.loads((out / "config.json").read_text())
    assert (config["bos_token_id"], config["eos_token_id"]) == (1, 2)
    hf_tok = transformers.AutoTokenizer.from_pretrained(out)
    assert (hf_tok.bos_token, hf_tok.eos_token, hf_tok.unk_token) == ("<s>", "</s>", "<unk>")
    text = "The quick brown fox: 342 + 567"
    trained = [1] + tok.encode(text, add_special_tokens=False).ids  # what a training row holds
    assert hf_tok(text)["input_ids"] == trained


@pytest.mark.parametrize("kind", ["qwen2", "qwen3", "mistral", "llama3_scaled"])
def test_an_imported_model_exported_at_once_gives_the_originals_logits_and_ids(tmp_path, kind):
    transformers = pytest.importorskip("transformers")
    folder = hf_folder(tmp_path, kind)
    model = load_hf_model(folder).eval()
    from syllabus.data import load_tokenizer

    tok = load_tokenizer(folder)
    out = export_hf(model, tok, tmp_path / "export")
    config = json.loads((out / "config.json").read_text())
    original = json.loads((folder / "config.json").read_text())
    assert config["architectures"] == original["architectures"]
    assert (config["bos_token_id"], config["eos_token_id"]) == (original["bos_token_id"], original["eos_token_id"])
    theirs = transformers.AutoModelForCausalLM.from_pretrained(out, dtype=torch.float32).eval()
    hf_tok = transformers.AutoTokenizer.from_pretrained(out)
    text = "def add(a, b): 342 + 567"
    assert hf_tok(text)["input_ids"] == tok.encode(text).ids  # BOS for Llama/Mistral, none for Qwen
    ids = torch.tensor([hf_tok(text)["input_ids"]])
    original = transformers.AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32).eval()
    assert transformers.AutoTokenizer.from_pretrained(folder)(text)["input_ids"] == ids[0].tolist()
    with torch.no_grad():
        assert torch.allclose(model(ids), theirs(ids).logits, atol=1e-4, rtol=0)
        assert torch.allclose(original(ids).logits, theirs(ids).logits, atol=1e-5, rtol=0)  # the round trip
