"""Training speed: our tensor loop versus a naive per-row pandas Dataset, same model and settings, in one run.

The naive loop is the way many projects write it: a `torch.utils.data.Dataset` whose `__getitem__` reads one
row of the DataFrame with `.iloc` and builds tensors from it, fed through a `DataLoader`. Both loops train the
same MLP ([16, 8], dropout 0.1) on the red wines with batch size 8 for 50 epochs (no early stopping), from
the same initial weights, after one short warm-up run. The last line printed is the speed ratio.

    python benchmarks/train_speed.py [--epochs 50] [--repeats 1]
"""
import argparse
import time
from dataclasses import replace

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset

from wine_nb.data import FEATURES, MODEL_INPUTS, QUALITY_CLASSES, TARGET, load_wine
from wine_nb.train import TrainConfig, build_model, prepare_data, train_model


class PandasRowDataset(Dataset):
    "One wine per item, read from the DataFrame row by row (the naive way)."
    def __init__(self, frame, scaler):
        self.frame, self.mean, self.std = frame, np.array(scaler.mean), np.array(scaler.std)

    def __len__(self): return len(self.frame)

    def __getitem__(self, i):
        row = self.frame.iloc[i]
        features = (row[FEATURES].to_numpy(dtype="float64") - self.mean) / self.std
        x = torch.tensor(np.append(features, float(row["wine"] == "red")), dtype=torch.float32)
        return x, torch.tensor(QUALITY_CLASSES.index(int(row[TARGET])))


def train_naive(model, data, cfg):
    "The naive loop: DataLoader over a per-row pandas Dataset, plain AdamW, no early stopping."
    loader = DataLoader(PandasRowDataset(data.split.train, data.scaler), batch_size=cfg.batch_size, shuffle=True,
                        generator=torch.Generator().manual_seed(cfg.seed))
    optimizer = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    for _ in range(cfg.epochs):
        model.train()
        for xb, yb in loader:
            loss = nn.functional.cross_entropy(model(xb), yb)
            optimizer.zero_grad(); loss.backward(); optimizer.step()
    return model


def timed(fn):
    start = time.perf_counter(); fn(); return time.perf_counter() - start


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=50)
    parser.add_argument("--repeats", type=int, default=1, help="runs of each loop; the best time of each is compared")
    args = parser.parse_args()
    # what the naive loop does too
    cfg = TrainConfig(hidden="16,8", dropout=0.1, batch_size=8, epochs=args.epochs, patience=0, bins=0,
                      label_smoothing=0.0, schedule="constant", weight_decay=1e-4, wine="red", wandb_mode="disabled")
    data = prepare_data(load_wine(cfg.wine), cfg)
    print(f"red wines: {len(data.split.train)} training rows, {len(MODEL_INPUTS)} inputs, batch size {cfg.batch_size}, "
          f"{cfg.epochs} epochs, torch {torch.__version__}; ours trains on 1 intra-op thread, "
          f"the naive loop on PyTorch's default {torch.get_num_threads()}")
    train_model(build_model(cfg), data, replace(cfg, epochs=2))  # warm-up: first calls pay one-off allocations
    def best(fn):
        return min(timed(fn) for _ in range(args.repeats))
    ours = best(lambda: train_model(build_model(cfg), data, cfg))
    naive = best(lambda: train_naive(build_model(cfg), data, cfg))
    steps = cfg.epochs * -(-len(data.split.train) // cfg.batch_size)
    print(f"ours  (tensor slices, fused AdamW, validation each epoch): {ours:7.2f} s {steps / ours:7.0f} steps/s")
    print(f"naive (per-row pandas Dataset + DataLoader):               {naive:7.2f} s {steps / naive:7.0f} steps/s")
    print(f"speedup: {naive / ours:.1f}x")


if __name__ == "__main__":
    main()
