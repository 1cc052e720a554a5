"""Hugging Face checkpoints, both directions: one name-and-shape mapping (``architectures``) that import
(``folder``, ``weights``; ``sharded`` for FSDP2 and DDP ranks) and ``syllabus.export`` share.

Supported: ``LlamaForCausalLM`` (Llama 2/3/3.1/3.2 with ``rope_scaling: llama3``, SmolLM/SmolLM2, TinyLlama),
``MistralForCausalLM`` (sliding window absent or at least the longest ``seq_len``), ``Qwen2ForCausalLM``
(q/k/v biases) and ``Qwen3ForCausalLM`` (q/k norms). Parameter names are the same on both sides, so the mapping
is about configs; the weights need only the tied head and the dtype handled. Sits below ``train``, ``plan`` and
``export``, beside ``checkpoints``.
"""
