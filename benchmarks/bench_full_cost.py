"""Cost of one neucrab-mini-v2 ``full`` run with a single fine-tuning epoch (to size the full build).

Usage::

    python benchmarks/bench_full_cost.py fashion-mnist efficientnet-lite0
    timeout 900 python benchmarks/bench_full_cost.py wordnet-nouns all-mpnet-base-v2

One thread (``torch.set_num_threads(1)``), learning rate 0.01, weight decay 0, seed 0: the setup (the
pre-trained features for the head's normalisation) and one run (30 probe epochs, 1 fine-tuning epoch,
validation and test evaluation) are timed. A 15-epoch run of the protocol costs about 15 times the
fine-tuning epoch, and a (task, checkpoint) pair 10 runs (8 grid points, 2 more seeds).
"""

from __future__ import annotations

import argparse
import dataclasses
import time


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("task")
    parser.add_argument("checkpoint")
    args = parser.parse_args()

    import torch

    from ckptrank.adapters import load_checkpoint
    from ckptrank.bench import neucrab_mini, neucrab_mini_v2
    from ckptrank.bench.finetune import FullTrainer

    torch.set_num_threads(1)
    task = neucrab_mini.load_suite_task(args.task, spec=neucrab_mini_v2.SPEC)
    config = dataclasses.replace(
        neucrab_mini_v2.PROTOCOL_CONFIGS["full"], lrs=(0.01,), weight_decays=(0.0,), epochs=1, seeds=(0,)
    )
    checkpoint = load_checkpoint(neucrab_mini_v2.CHECKPOINTS[args.checkpoint].spec)
    start = time.perf_counter()
    trainer = FullTrainer(checkpoint, task, config)
    setup = time.perf_counter() - start
    start = time.perf_counter()
    result = trainer.run(0.01, 0.0, 0)
    one = time.perf_counter() - start
    print(
        f"{args.task} / {args.checkpoint}: {result.n_train} training samples; setup {setup:.1f} s; one run "
        f"with 1 fine-tuning epoch {one:.1f} s (CPU {result.cpu_seconds:.1f} s); validation accuracy "
        f"{result.val_accuracy:.3f}"
    )


if __name__ == "__main__":
    main()
