"""``shipyard.lightning.ShipyardLogger`` records a real Lightning Trainer's run: hyperparameters as params, each
logged metric at its global step, checkpoints with ``log_model``, and the run's end."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

import shipyard

lightning = pytest.importorskip("lightning", reason="the Lightning logger needs lightning (the dev extras have it)")
torch = pytest.importorskip("torch")


class Tiny(lightning.LightningModule):  # type: ignore[misc, unused-ignore]
    def __init__(self, lr: float = 0.05, net: dict[str, Any] | None = None) -> None:
        super().__init__()
        self.save_hyperparameters()
        self.layer = torch.nn.Linear(4, 1)

    def training_step(self, batch: Any, batch_idx: int) -> Any:
        x, y = batch
        loss = torch.nn.functional.mse_loss(self.layer(x), y)
        self.log("train_loss", loss)
        return loss

    def configure_optimizers(self) -> Any:
        return torch.optim.SGD(self.parameters(), lr=self.hparams.lr)


# Lightning 2.6 still asks torch 2.13's pytree the old way
@pytest.mark.filterwarnings("ignore:`isinstance.treespec, LeafSpec.` is deprecated:FutureWarning")
def test_a_trainer_run_is_recorded_with_hyperparams_stepped_metrics_and_checkpoints(project: Path) -> None:
    from shipyard.lightning import ShipyardLogger

    torch.manual_seed(0)
    x = torch.randn(32, 4)
    data = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(x, x.sum(1, keepdim=True)), batch_size=8)
    logger = ShipyardLogger(experiment_name="lit", run_name="tiny", tags={"team": "vision"}, log_model=True,
                            prefix="fit")
    trainer = lightning.Trainer(max_epochs=2, logger=logger, log_every_n_steps=1, accelerator="cpu", devices=1,
                                enable_progress_bar=False, enable_model_summary=False,
                                default_root_dir=str(project))
    with shipyard.start_run(name="outer") as outer:
        trainer.fit(Tiny(net={"width": 8, "act": "relu"}), data)
    run = shipyard.get_run(logger.run_id)
    assert (run.name, run.status.value, run.tags["team"], run.parent_id) == ("tiny", "finished", "vision", outer.id)
    assert logger.version == run.id and logger.name == "lit"
    assert {k: run.params[k] for k in ("lr", "net/width", "net/act")} == {"lr": "0.05", "net/width": "8",
                                                                          "net/act": "relu"}
    with shipyard.Client() as client:
        history = client.services.meta.metric_history(run.id, "fit-train_loss")
        epochs = client.services.meta.metric_history(run.id, "fit-epoch")
    assert [m.step for m in history] == list(range(8))  # 2 epochs x 4 batches, each at its global step
    assert history[-1].value < history[0].value
    assert [(m.step, m.value) for m in epochs][::4] == [(0, 0.0), (4, 1.0)]
    assert [a.path for a in run.artifacts] == ["checkpoints/epoch=1-step=8.ckpt"]
