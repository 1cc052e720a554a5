"""The plan tests' demo corpus and tokenizer fixtures, shared with the mixture-search tests."""

from tests.plan.conftest import demo_corpus, demo_tokenizer  # noqa: F401  (pytest fixtures)
