"""MLflow: one run per trial in an experiment named after the study, params, curves and test metrics."""

from __future__ import annotations

import logging
import math
import time
from pathlib import Path
from typing import Any

from ablate import LOGGERS
from ablate.components.loggers._flat import flat_config

MAX_PARAM = 6000  # characters MLflow keeps of a parameter value
BATCH_PARAMS = 100  # parameters (and, here, metrics) MLflow takes per log_batch call


@LOGGERS.register("mlflow", label="MLflow")
class MLflow:
    """MLflow tracking, one run per trial: resolved config as params, per-epoch losses, test metrics.

    Args:
        tracking_uri: an MLflow tracking URI (a server, ``sqlite:///...``); default
            ``sqlite:///<study folder>/mlflow.db`` (``mlflow ui --backend-store-uri`` it).
        experiment: the experiment's name (default: the study folder's name, i.e. the study's).
        folder: the study folder (injected).
    """

    def __init__(self, tracking_uri: str | None = None, experiment: str | None = None, *, folder: Path) -> None:
        self.uri = tracking_uri or f"sqlite:///{Path(folder).resolve() / 'mlflow.db'}"
        self.experiment = experiment or Path(folder).resolve().name

    def log(self, run: str, config: dict[str, Any], history: list[dict[str, Any]], metrics: dict[str, float]) -> None:
        from mlflow.entities import Metric, Param  # imports MLflow: only for studies that log to it
        from mlflow.tracking import MlflowClient

        for name in ("mlflow", "alembic"):  # their INFO lines about creating tables would fill every study log
            logging.getLogger(name).setLevel(logging.WARNING)

        client = MlflowClient(tracking_uri=self.uri)  # not the global fluent state: a study may log elsewhere too
        found = client.get_experiment_by_name(self.experiment)
        experiment = found.experiment_id if found else client.create_experiment(self.experiment)
        run_id = client.create_run(experiment, run_name=run).info.run_id
        now = int(time.time() * 1000)
        curves, steps = [], {}
        for epoch in history:
            tag = epoch["tag"]
            step = steps[tag] = steps.get(tag, 0) + 1
            curves += [Metric(f"{tag}.{k}", float(v), now, step) for k, v in epoch.items() if k not in ("tag", "epoch")]
        finals = [Metric(f"test.{k}", v, now, 0) for k, v in metrics.items() if v is not None and math.isfinite(v)]
        params = [Param(k, str(v)[:MAX_PARAM]) for k, v in flat_config(config).items()]
        values = curves + finals
        for start in range(0, max(len(values), len(params)), BATCH_PARAMS):  # MLflow's limits per batch call
            client.log_batch(
                run_id, metrics=values[start : start + BATCH_PARAMS], params=params[start : start + BATCH_PARAMS]
            )
        client.set_terminated(run_id)
