"""Reference training loops the benchmarks compare against: keras-hub and transformers (PyTorch).

They are written the way a user of each library would write them, with the same rows, batch size,
learning rate and epochs as our run.
"""
from __future__ import annotations

import math
import time

import numpy as np


def _batches(n, batch_size, rng):
    order = rng.permutation(n)
    for i in range(0, n, batch_size):
        yield order[i : i + batch_size]


def transformers_classifier(checkpoint, train, dev, *, batch_size=32, epochs=1, lr=1e-4, padding="dynamic",
                            max_length=64, seed=0, warmup_ratio=0.1, dev_every_epoch=False):
    """Fine-tune `AutoModelForSequenceClassification`; padding "dynamic" (longest in batch) or "max_length".

    `dev_every_epoch`: also score dev after every epoch (``dev_accuracy_per_epoch``; not in the timing).
    """
    import torch
    from transformers import AutoModelForSequenceClassification, AutoTokenizer, get_linear_schedule_with_warmup

    torch.manual_seed(seed)
    tok = AutoTokenizer.from_pretrained(str(checkpoint))
    model = AutoModelForSequenceClassification.from_pretrained(str(checkpoint), num_labels=2)
    texts, labels = train
    steps = epochs * math.ceil(len(texts) / batch_size)
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=0.01)
    sched = get_linear_schedule_with_warmup(opt, int(warmup_ratio * steps), steps)
    pad = True if padding == "dynamic" else "max_length"
    rng = np.random.default_rng(seed)
    model.train()
    start = time.perf_counter()
    per_epoch, scoring = [], 0.0
    for epoch in range(epochs):
        if dev_every_epoch and epoch:
            mark = time.perf_counter()
            per_epoch.append(_torch_accuracy(model, tok, dev, max_length))
            model.train()
            scoring += time.perf_counter() - mark
        for idx in _batches(len(texts), batch_size, rng):
            enc = tok([texts[i] for i in idx], padding=pad, truncation=True, max_length=max_length,
                      return_tensors="pt")
            out = model(**enc, labels=torch.tensor([labels[i] for i in idx]))
            out.loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            opt.step()
            sched.step()
            opt.zero_grad()
    seconds = time.perf_counter() - start - scoring
    accuracy = _torch_accuracy(model, tok, dev, max_length)
    result = {"train_seconds": seconds, "examples_per_s": epochs * len(texts) / seconds, "dev_accuracy": accuracy}
    if dev_every_epoch:
        result["dev_accuracy_per_epoch"] = [*per_epoch, accuracy]
    return result


def _torch_accuracy(model, tok, dev, max_length):
    import torch

    model.eval()
    correct = 0
    with torch.no_grad():
        for i in range(0, len(dev[0]), 64):
            enc = tok(dev[0][i : i + 64], padding=True, truncation=True, max_length=max_length, return_tensors="pt")
            pred = model(**enc).logits.argmax(-1).numpy()
            correct += int((pred == np.asarray(dev[1][i : i + 64])).sum())
    return correct / len(dev[0])


def keras_hub_classifier(checkpoint, train, dev, *, batch_size=32, epochs=1, lr=1e-4, sequence_length=64, seed=0):
    """What a keras-hub user writes: `BertTextClassifier.from_preset` with its own preprocessor."""
    import keras
    import keras_hub

    keras.utils.set_random_seed(seed)
    model = keras_hub.models.BertTextClassifier.from_preset(str(checkpoint), num_classes=2)
    model.preprocessor.sequence_length = sequence_length
    model.compile(optimizer=keras.optimizers.AdamW(lr, weight_decay=0.01),
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True), metrics=["accuracy"])
    texts, labels = train
    start = time.perf_counter()
    model.fit(x=np.array(texts), y=np.array(labels), batch_size=batch_size, epochs=epochs, verbose=0)
    seconds = time.perf_counter() - start
    _, acc = model.evaluate(x=np.array(dev[0]), y=np.array(dev[1]), batch_size=64, verbose=0)
    return {"train_seconds": seconds, "examples_per_s": epochs * len(texts) / seconds, "dev_accuracy": float(acc)}
