"""One worker of a two-worker `MultiWorkerMirroredStrategy` pretraining job (run by test_pretrain.py).

    python multi_worker_pretrain.py INDEX PORT0,PORT1 CHECKPOINT CORPUS OUTPUT

Writes `OUTPUT/worker-INDEX.json` with a checksum of the worker's final weights.
"""
import json
import os
import sys
from pathlib import Path

index, ports, checkpoint, corpus, output = sys.argv[1:6]
os.environ["TF_CONFIG"] = json.dumps({
    "cluster": {"worker": [f"127.0.0.1:{port}" for port in ports.split(",")]},
    "task": {"type": "worker", "index": int(index)},
})

sys.path.insert(0, str(Path(__file__).parent))
from pretrain_helpers import weights_checksum  # noqa: E402

from ptft_keras.jobs.pretrain import pretrain  # noqa: E402

result = pretrain(model=checkpoint, corpus=corpus, output=output, strategy="multi_worker", max_steps=4,
                  batch_size=8, sequence_length=32, heldout_lines=100, save_every=2, eval_every=2,
                  learning_rate=1e-3, verbose=0)
Path(output, f"worker-{index}.json").write_text(json.dumps(
    {"checksum": weights_checksum(result.model), "steps": result.steps, "mlm_loss": result.mlm_loss,
     "initial_mlm_loss": result.initial_mlm_loss}))
