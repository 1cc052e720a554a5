"""Records in their own shapes: chat, question/answer with calculator notes, languages, BOM/CRLF, and the
explanation of skipped records."""

import json
from collections import Counter

import pytest

from syllabus.config.errors import ConfigError
from syllabus.config.source import SourceSpec, as_source_spec
from syllabus.data import TextStreamDataset, add_special_tokens
from syllabus.data.records import RecordRenderer, step_tags
from syllabus.data.sources import read_documents

CHAT = {"messages": [{"role": "user", "content": "What is 12 * 4?"},
                     {"role": "assistant", "content": "<think>12 * 4 = 48</think>The answer is 48."}]}
SHAREGPT = {"conversations": [{"from": "human", "value": "Hi"}, {"from": "gpt", "value": "<think>greet</think>Hello"}]}
GSM8K = {"question": "Natalia sold 48 clips in April and half as many in May. How many in all?",
         "answer": "In May she sold 48/2 = <<48/2=24>>24 clips.\nIn all 48+24 = <<48+24=72>>72 clips.\n#### 72"}
GSM_TEMPLATE = "Question: {question}\nAnswer: {answer}"


def write(path, records, bom=False, crlf=False):
    path.parent.mkdir(parents=True, exist_ok=True)
    end = "\r\n" if crlf else "\n"
    text = "".join(json.dumps(r) + end for r in records)
    path.write_bytes((b"\xef\xbb\xbf" if bom else b"") + text.encode())
    return path


def test_chat_default_template_and_sharegpt():
    r = RecordRenderer(SourceSpec(path="-", format="chat"))
    assert r.render(CHAT, Counter()) == ("User: What is 12 * 4?\n\n"
                                         "Assistant: <think>12 * 4 = 48</think>The answer is 48.")
    assert r.render(SHAREGPT, Counter()) == "User: Hi\n\nAssistant: <think>greet</think>Hello"
    skips = Counter()
    assert r.render({"text": "plain"}, skips) is None and skips == {"missing_field:messages": 1}


def test_chat_assistant_spans_follow_calculator_rewrite():
    r = RecordRenderer(SourceSpec(path="-", format="chat", loss_on="assistant", calculator="tags"))
    rec = {"messages": [{"role": "user", "content": "2+2 <<2+2=4>>?"},
                        {"role": "assistant", "content": "It is <<2+2=4>>4"}]}
    text = r.render(rec, Counter())
    [(a, b)] = text.spans
    assert text[a:b] == "It is <calculation>2+2=4</calculation>4"
    assert text.startswith("User: 2+2 <calculation>2+2=4</calculation>?")


def test_hf_chat_template(tmp_path):
    cfg = {"chat_template": "{% for m in messages %}<|{{ m['role'] }}|>{{ m['content'] }}{{ eos_token }}\n{% endfor %}",
           "eos_token": "</s>"}
    (tmp_path / "tokenizer_config.json").write_text(json.dumps(cfg))
    r = RecordRenderer(SourceSpec(path="-", format="chat", chat_template=str(tmp_path)))
    assert r.render(SHAREGPT, Counter()) == "<|user|>Hi</s>\n<|assistant|><think>greet</think>Hello</s>\n"


def test_template_calculator_steps_and_missing_field():
    keep = RecordRenderer(SourceSpec(path="-", template=GSM_TEMPLATE))
    assert keep.render(GSM8K, Counter()).endswith("<<48+24=72>>72 clips.\n#### 72")
    tags = RecordRenderer(SourceSpec(path="-", template=GSM_TEMPLATE, calculator="tags", steps="tags"))
    text = tags.render(GSM8K, Counter())
    assert "<step>In May she sold 48/2 = <calculation>48/2=24</calculation>24 clips.</step>" in text
    assert text.endswith("</step>\n#### 72")
    strip = RecordRenderer(SourceSpec(path="-", template=GSM_TEMPLATE, calculator="strip"))
    assert "= 24 clips" in strip.render(GSM8K, Counter())
    skips = Counter()
    assert tags.render({"question": "no answer"}, skips) is None
    assert skips == {"missing_field:answer": 1}
    assert step_tags("a\n\n#### 3") == "<step>a</step>\n\n#### 3"


def test_languages_by_field_and_by_path():
    r = RecordRenderer(SourceSpec(path="-", text_field="content", languages=["python", "markdown"]))
    skips = Counter()
    assert r.render({"content": "x = 1", "lang": "Python"}, skips) == "x = 1"
    assert r.render({"content": "int x;", "language": "c"}, skips) is None
    assert r.render({"content": "# T", "path": "docs/README.md"}, skips) == "# T"
    assert r.render({"content": "fn main(){}", "max_stars_repo_path": "a.rs"}, skips) is None
    assert skips == {"language": 2}


def test_bad_spec_values_name_the_field():
    with pytest.raises(Exception, match="calculator"):
        as_source_spec({"path": "x", "calculator": "eval"})
    with pytest.raises(Exception, match="loss_on"):
        as_source_spec({"path": "x", "loss_on": "assistant"})
    with pytest.raises(ConfigError, match="template"):
        RecordRenderer(SourceSpec(path="-", template="{question"))


def test_bom_and_crlf_lose_nothing(tmp_path):
    recs = [{"text": f"document number {i}"} for i in range(5)]
    path = write(tmp_path / "bom.jsonl", recs, bom=True, crlf=True)
    skips = Counter()
    assert list(read_documents(path, skips)) == [r["text"] for r in recs]
    assert not skips
    txt = tmp_path / "note.txt"
    txt.write_bytes(b"\xef\xbb\xbfline one\r\nline two\r\n")
    assert list(read_documents(txt)) == ["line one\nline two\n"]


def test_messages_read_as_text_fails_naming_messages_and_format_chat(tmp_path, tok):
    write(tmp_path / "chat.jsonl", [CHAT] * 20)
    ds = TextStreamDataset(tmp_path / "chat.jsonl", tok, split="train")
    with pytest.raises(ConfigError) as err:
        ds.next_batch(1, 16)
    message = str(err.value)
    assert "\n" not in message
    assert "missing_field=20" in message and "records have fields: messages" in message
    assert "set `format: chat`" in message
    gsm = write(tmp_path / "gsm" / "train.jsonl", [GSM8K] * 5)
    with pytest.raises(ConfigError, match=r"question.*template: \"Question: \{question\}"):
        TextStreamDataset(gsm, tok).next_batch(1, 16)


def test_more_than_half_skipped_warns(tmp_path, tok, caplog):
    write(tmp_path / "mixed.jsonl", [CHAT] * 30 + [{"text": "a real document here"}] * 10)
    ds = TextStreamDataset(tmp_path / "mixed.jsonl", tok, seq_len=8)
    with caplog.at_level("WARNING", logger="syllabus"):
        ds.next_batch(2, 8)
    assert "missing_field=30" in caplog.text and "format: chat" in caplog.text


def test_chat_tags_become_single_special_ids(tmp_path, tok):
    from tokenizers import Tokenizer

    stage_tok = Tokenizer.from_str(tok.to_str())
    think, end = add_special_tokens(stage_tok, ["<think>", "</think>"])
    write(tmp_path / "chat.jsonl", [CHAT, SHAREGPT] * 3)
    spec = SourceSpec(path=str(tmp_path / "chat.jsonl"), format="chat")
    ds = TextStreamDataset(spec, stage_tok, shuffle=False, val_fraction=0.0)
    docs = [ds.read_document(10_000) for _ in range(6)]
    for d in docs:
        ids = d.tolist()
        assert ids.count(think) == 1 and ids.count(end) == 1
        pieces = stage_tok.decode(ids[:-1], skip_special_tokens=False)
        assert pieces in {RecordRenderer(spec).render(CHAT, Counter()),
                          RecordRenderer(spec).render(SHAREGPT, Counter())}


def test_gsm8k_calculator_tags_are_ids_and_arithmetic_digit_split(tmp_path, tok):
    from tokenizers import Tokenizer

    stage_tok = Tokenizer.from_str(tok.to_str())
    calc, end = add_special_tokens(stage_tok, ["<calculation>", "</calculation>"])
    write(tmp_path / "train.jsonl", [GSM8K] * 4)
    spec = SourceSpec(path=str(tmp_path / "train.jsonl"), template=GSM_TEMPLATE, calculator="tags")
    ds = TextStreamDataset(spec, stage_tok, shuffle=False, val_fraction=0.0)
    ids = ds.read_document(10_000).tolist()
    assert ids.count(calc) == 2 and ids.count(end) == 2
    inside = ids[ids.index(calc) + 1: ids.index(end)]
    assert [stage_tok.decode([i]) for i in inside] == list("48/2=24")
    assert stage_tok.decode(ids[:-1], skip_special_tokens=False).endswith("#### 72")


@pytest.mark.parametrize("packed", [False, True])
def test_loss_on_assistant_labels_only_assistant_turns(tmp_path, tok, packed):
    from syllabus.data import open_batches

    rec = {"messages": [{"role": "user", "content": "Say the sum of 12 and 30."},
                        {"role": "assistant", "content": "It is 42."},
                        {"role": "user", "content": "And twice that?"},
                        {"role": "assistant", "content": "84."}]}
    write(tmp_path / "chat.jsonl", [rec] * 40)
    spec = SourceSpec(path=str(tmp_path / "chat.jsonl"), format="chat", loss_on="assistant")
    batches = open_batches({"chat": spec}, {"chat": 1.0}, tok, packed=packed)
    batch = batches.next_batch(2, 64)
    for row in range(2):
        labels = batch["labels"][row]
        trained = labels[labels != -100].tolist()
        eos = trained.count(0)
        text = tok.decode([t for t in trained if t != 0])
        if not packed:
            assert text == " It is 42.84." and eos == 1  # " It" is one token, starting at the space
            inputs = tok.decode(batch["input_ids"][row][batch["input_ids"][row] != 1].tolist())
            assert inputs.startswith("User: Say the sum")
        else:
            assert "User" not in text and "sum" not in text and "42." in text


BOT = {"conversations": [{"from": "human", "value": "What is 12 * 4?"}, {"from": "bot", "value": "It is 48."}]}


@pytest.mark.parametrize("role", ["bot", "chatgpt", "gpt", "model", "assistant", "ASSISTANT"])
def test_assistant_aliases_render_as_assistant_turns(role):
    record = {"conversations": [{"from": "human", "value": "Hi"}, {"from": role, "value": "Hello"}]}
    text = RecordRenderer(SourceSpec(path="-", format="chat", loss_on="assistant")).render(record, Counter())
    assert text == "User: Hi\n\nAssistant: Hello" and [text[a:b] for a, b in text.spans] == ["Hello"]


def test_user_system_tool_aliases():
    record = {"messages": [{"role": "system", "content": "s"}, {"role": "user", "content": "u"},
                           {"role": "function", "content": "f"}, {"role": "tool", "content": "t"}]}
    assert RecordRenderer(SourceSpec(path="-", format="chat")).render(record, Counter()) == \
        "System: s\n\nUser: u\n\nTool: f\n\nTool: t"


def test_unknown_role_is_skipped_counted_and_mapped_by_the_roles_option():
    record = {"conversations": [{"from": "human", "value": "Tell me"}, {"from": "narrator", "value": "Once"}]}
    skips = Counter()
    assert RecordRenderer(SourceSpec(path="-", format="chat")).render(record, skips) is None
    assert skips == {"unknown_role:narrator": 1}
    mapped = RecordRenderer(SourceSpec(path="-", format="chat", loss_on="assistant",
                                       roles={"Narrator": "assistant"}))
    text = mapped.render(record, Counter())
    assert text == "User: Tell me\n\nAssistant: Once" and text.spans == ((len(text) - 4, len(text)),)
    with pytest.raises(Exception, match="roles"):
        as_source_spec({"path": "x", "format": "chat", "roles": {"narrator": "bard"}})
    with pytest.raises(Exception, match="roles"):
        as_source_spec({"path": "x", "roles": {"narrator": "assistant"}})


def test_unknown_role_source_is_refused_naming_the_role_and_the_option(tmp_path, tok):
    narrator = {"conversations": [{"from": "human", "value": "Tell me"}, {"from": "narrator", "value": "Once"}]}
    write(tmp_path / "chat.jsonl", [narrator] * 30)
    spec = SourceSpec(path=str(tmp_path / "chat.jsonl"), format="chat", loss_on="assistant")
    with pytest.raises(ConfigError) as err:
        TextStreamDataset(spec, tok, split="train").next_batch(1, 16)
    message = str(err.value)
    assert "\n" not in message and "unknown_role:narrator=30" in message
    assert "`roles: {narrator: assistant}`" in message


def test_some_unknown_roles_warn_even_when_most_records_are_kept(tmp_path, tok, caplog):
    narrator = {"conversations": [{"from": "human", "value": "Tell me"}, {"from": "narrator", "value": "Once"}]}
    write(tmp_path / "chat.jsonl", [BOT] * 30 + [narrator] * 3)
    ds = TextStreamDataset(SourceSpec(path=str(tmp_path / "chat.jsonl"), format="chat"), tok, seq_len=8,
                           val_fraction=0.0)
    with caplog.at_level("WARNING", logger="syllabus"):
        ds.next_batch(2, 8)
    assert "unknown_role:narrator=3" in caplog.text and "roles: {narrator: assistant}" in caplog.text


def test_records_without_an_assistant_turn_train_nothing_and_are_refused(tmp_path, tok):
    write(tmp_path / "chat.jsonl", [{"messages": [{"role": "user", "content": "only a question"}]}] * 20)
    spec = SourceSpec(path=str(tmp_path / "chat.jsonl"), format="chat", loss_on="assistant")
    with pytest.raises(ConfigError, match=r"no_assistant_turn=20.*loss_on: all"):
        TextStreamDataset(spec, tok, split="train").next_batch(1, 16)


def test_bot_records_give_trained_labels(tmp_path, tok):
    from syllabus.data import open_batches

    write(tmp_path / "chat.jsonl", [BOT] * 40)
    spec = SourceSpec(path=str(tmp_path / "chat.jsonl"), format="chat", loss_on="assistant")
    batch = open_batches({"chat": spec}, {"chat": 1.0}, tok, packed=False).next_batch(2, 64)
    trained = batch["labels"][0][batch["labels"][0] != -100].tolist()
    assert tok.decode([t for t in trained if t != 0]) == " It is 48."
