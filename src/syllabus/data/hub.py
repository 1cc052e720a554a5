"""Hugging Face ``datasets`` as record streams: ``hf:owner/name[:config]``, ``hf:json:FILES`` (also
``parquet``, ``text``, ``csv``: local data files through the same code path) and ``hf:/path/to/folder``
(a ``save_to_disk`` folder). ``datasets`` is imported only when such a source is used."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from pathlib import Path

from syllabus.config.errors import ConfigError
from syllabus.data.records import RecordRenderer


def hub_stream(spec: str, split: str = "train"):
    """The ``datasets`` streaming dataset of ``hf:owner/name[:config]``, ``hf:json:FILES`` (also ``parquet``,
    ``text``: local data files) or ``hf:/path/to/saved_dataset`` (``save_to_disk`` folder). ``split`` "val"
    reads the dataset's validation split (else its test split, as GSM8K ships); ``None`` when it has neither."""
    try:
        import datasets
    except ImportError as err:
        raise ConfigError(f"data source {spec}: the 'datasets' package is needed (pip install datasets)") from err
    name, _, config = spec[3:].partition(":")
    want = {"train": ("train",), "val": ("validation", "valid", "val", "dev", "test")}[split]
    try:
        if name in ("json", "parquet", "text", "csv") and config:
            files = {"train": config}
            if split == "val":
                return None
            return datasets.load_dataset(name, data_files=files, split="train", streaming=True)
        if Path(name).is_dir() and (Path(name) / "dataset_dict.json").is_file() or \
                Path(name).is_dir() and (Path(name) / "dataset_info.json").is_file():
            loaded = datasets.load_from_disk(name)
            if isinstance(loaded, datasets.DatasetDict):
                key = next((k for k in want if k in loaded), None)
                return None if key is None else loaded[key].to_iterable_dataset()
            return None if split == "val" else loaded.to_iterable_dataset()
        splits = datasets.get_dataset_split_names(name, config or None)
        key = next((k for k in want if k in splits), None)
        return None if key is None else datasets.load_dataset(name, config or None, split=key, streaming=True)
    except (FileNotFoundError, ValueError) as err:
        raise ConfigError(f"data source {spec}: {err}") from None


def read_hub(spec: str, skips: Counter, *, text_field: str = "text", renderer: RecordRenderer | None = None,
             split: str = "train") -> Iterator[str]:
    """Documents of a hub spec (see :func:`hub_stream`), rendered like file records."""
    if renderer is None:
        from syllabus.config.source import SourceSpec

        renderer = RecordRenderer(SourceSpec(path=spec, text_field=text_field))
    stream = hub_stream(spec, split)
    if stream is None:
        raise ConfigError(f"data source {spec}: no {split} split")
    for record in stream:
        text = renderer.render(record, skips)
        if text is not None:
            yield text
