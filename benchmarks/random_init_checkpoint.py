"""Write a randomly initialised copy of a checkpoint's architecture (same config and vocabulary).

Used as the "random init" baseline of the fine-tuning acceptance runs: same model, no pretraining.

    python benchmarks/random_init_checkpoint.py --output /tmp/random_minilm [--model PATH] [--seed 0]
"""
import argparse

import keras

import ptft_keras as ptft
from ptft_keras.models.hf_checkpoint import read_hf_config


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=None, help="checkpoint whose architecture to copy (default: all-MiniLM-L6-v2)")
    parser.add_argument("--output", required=True)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    source = args.model or str(ptft.default_checkpoint_path())
    keras.utils.set_random_seed(args.seed)
    backbone = ptft.Backbone.from_hf_config(read_hf_config(source))
    backbone.save_pretrained(args.output, tokenizer=ptft.Tokenizer.from_pretrained(source))
    print(args.output)


if __name__ == "__main__":
    main()
