"""TRL GRPO against a running service: a tiny policy trains a few steps with the service as its reward function.

    python -m bench.trl_grpo [--url http://127.0.0.1:8000] [--steps 4] [--generations 4] [--chat]

The policy is a 2-layer Llama with random weights over SmolLM2's tokenizer (from the CPU default's model cache,
or ``--tokenizer FOLDER``): what it writes is noise, which is the point: the run measures the reward path TRL
drives (one /v1/rank per prompt group per step), not learning. Prints each step's mean reward and the seconds the
reward calls took, and writes them to bench/results/trl_grpo.md.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import Any

from serve_app.client.trl import GRPOReward
from serve_app.local_service import BASE, cpu_default_model_folder

QUESTIONS = ["What is the capital of France?", "Name a prime number.", "What is 2 + 2?", "Say hello in Spanish."]
RESULTS = Path(__file__).parent / "results" / "trl_grpo.md"


def tiny_policy(tokenizer_folder: str | Path, seed: int = 0) -> tuple[Any, Any]:
    """A 2-layer, 32-wide Llama with random weights over a real tokenizer (and its chat template)."""
    import torch
    import transformers

    torch.manual_seed(seed)
    tokenizer = transformers.AutoTokenizer.from_pretrained(str(tokenizer_folder))
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    config = transformers.LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=2,
        num_key_value_heads=2,
        max_position_embeddings=512,
        tie_word_embeddings=True,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )
    return transformers.LlamaForCausalLM(config), tokenizer


def grpo_trainer(
    model: Any,
    tokenizer: Any,
    reward: GRPOReward,
    out: str | Path,
    *,
    steps: int,
    generations: int,
    chat: bool,
    questions: list[str] = QUESTIONS,
) -> Any:
    """A CPU GRPOTrainer with one prompt group per step and ``reward`` as its only reward function."""
    import datasets
    import trl

    prompts: list[Any] = [[{"role": "user", "content": q}] for q in questions] if chat else list(questions)
    args = trl.GRPOConfig(
        output_dir=str(out),
        use_cpu=True,
        bf16=False,
        max_steps=steps,
        per_device_train_batch_size=generations,
        num_generations=generations,
        max_completion_length=12,
        logging_steps=1,
        save_strategy="no",
        report_to="none",
        seed=0,
        dataloader_num_workers=0,
    )
    return trl.GRPOTrainer(
        model=model,
        reward_funcs=[reward],
        args=args,
        train_dataset=datasets.Dataset.from_dict({"prompt": prompts}),
        processing_class=tokenizer,
    )


def main() -> None:
    import tempfile

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--url", default=BASE)
    parser.add_argument("--steps", type=int, default=4)
    parser.add_argument("--generations", type=int, default=4)
    parser.add_argument("--chat", action="store_true", help="chat-format prompts and completions")
    parser.add_argument("--tokenizer", help="a local tokenizer folder (default: SmolLM2's, from the model cache)")
    a = parser.parse_args()

    timings: list[float] = []
    started: list[float] = []

    class Timed(GRPOReward):
        async def __call__(self, *args: Any, **kwargs: Any) -> list[float | None]:
            started.append(time.perf_counter())
            try:
                return await super().__call__(*args, **kwargs)
            finally:
                timings.append(time.perf_counter() - started[-1])

    reward = Timed(a.url, num_generations=a.generations)
    model, tokenizer = tiny_policy(a.tokenizer or cpu_default_model_folder())
    with tempfile.TemporaryDirectory() as out:
        trainer = grpo_trainer(model, tokenizer, reward, out, steps=a.steps, generations=a.generations, chat=a.chat)
        t0 = time.perf_counter()
        trainer.train()
        wall = time.perf_counter() - t0
    means = [e["rewards/genrm/mean"] for e in trainer.state.log_history if "rewards/genrm/mean" in e]
    rows = [f"| {k + 1} | {m:.3f} | {s:.1f} |" for k, (m, s) in enumerate(zip(means, timings, strict=False))]
    table = "\n".join(["| step | mean reward | reward calls, s |", "|---|---|---|", *rows])
    text = (
        f"# TRL GRPO against the service\n\n`python -m bench.trl_grpo --steps {a.steps} --generations "
        f"{a.generations}{' --chat' if a.chat else ''}`: {trainer.state.global_step} steps in {wall:.1f} s, "
        f"{sum(timings):.1f} s of it in reward calls ({a.url}).\n\n{table}\n"
    )
    print(text)
    RESULTS.write_text(text)


if __name__ == "__main__":
    main()
