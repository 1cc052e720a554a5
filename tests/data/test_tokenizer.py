import json

import pytest

from syllabus.config.errors import ConfigError
from syllabus.data import (EOS, PAD, add_special_tokens, eos_id, load_tokenizer, pad_id, save_tokenizer,
                           tokenizer_fingerprint)


def test_round_trip_on_real_text(tok, real_text):
    for text in [real_text[:5000], "  leading spaces\ttabs\r\nand ünïcödé ✓ 漢字 🙂", "x"]:
        assert tok.decode(tok.encode(text).ids) == text


def test_digits_are_single_tokens(tok):
    enc = tok.encode("342 + 567 = 909")
    digit_tokens = [t for t in enc.tokens if any(ch.isdigit() for ch in t)]
    assert digit_tokens == list("342567909")


def test_special_ids_and_no_bos(tok):
    assert eos_id(tok) == 0 and tok.token_to_id(EOS) == 0
    assert pad_id(tok) == 1 and tok.token_to_id(PAD) == 1
    assert tok.encode("hello").ids[0] != 0


def test_add_special_tokens_keeps_old_ids(tok, tmp_path):
    path = save_tokenizer(tok, tmp_path)
    grown = load_tokenizer(path)
    before = grown.get_vocab(with_added_tokens=True)
    size = grown.get_vocab_size(with_added_tokens=True)
    ids = add_special_tokens(grown, ["<calculation>", "</calculation>"])
    assert ids == [size, size + 1]
    after = grown.get_vocab(with_added_tokens=True)
    assert all(after[t] == i for t, i in before.items())
    enc = grown.encode("3 * 4 <calculation>12</calculation> done")
    assert size in enc.ids and size + 1 in enc.ids
    assert grown.decode(enc.ids, skip_special_tokens=False).count("<calculation>") == 1
    assert tokenizer_fingerprint(grown) != tokenizer_fingerprint(tok)


def test_a_token_listed_twice_is_a_config_error_and_one_the_tokenizer_has_is_reused(tok, tmp_path):
    grown = load_tokenizer(save_tokenizer(tok, tmp_path))
    size = grown.get_vocab_size()
    with pytest.raises(ConfigError, match="'<y>' is listed more than once"):
        add_special_tokens(grown, ["<y>", "<y>"])
    # an imported model's <think> (here: EOS) keeps its id and row; only the others are new
    assert add_special_tokens(grown, [EOS, "<x>"]) == [grown.token_to_id(EOS), size]
    assert grown.get_vocab_size() == size + 1


def test_save_load_fingerprint_stable(tok, tmp_path):
    loaded = load_tokenizer(save_tokenizer(tok, tmp_path / "t" / "tokenizer.json"))
    assert tokenizer_fingerprint(loaded) == tokenizer_fingerprint(tok)
    assert loaded.encode("hello 12").ids == tok.encode("hello 12").ids


def test_foreign_tokenizer_needs_an_eos(tok, tmp_path):
    data = json.loads(tok.to_str())
    for entry in data["added_tokens"]:
        entry["content"] = entry["content"].replace("endoftext", "nothing")
    data["model"]["vocab"] = {k.replace("endoftext", "nothing"): v for k, v in data["model"]["vocab"].items()}
    bad = tmp_path / "other.json"
    bad.write_text(json.dumps(data))
    with pytest.raises(ConfigError, match="other.json"):
        load_tokenizer(bad)
    with pytest.raises(ConfigError, match="not found"):
        load_tokenizer(tmp_path / "missing.json")
