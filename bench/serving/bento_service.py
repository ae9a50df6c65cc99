"""The same model behind BentoML (run with `bentoml serve bento_service:Iris`)."""

import os
import pickle

import bentoml
import numpy as np


@bentoml.service(workers=1)
class Iris:
    def __init__(self) -> None:
        with open(os.environ["BENCH_MODEL"], "rb") as f:
            self.model = pickle.load(f)

    @bentoml.api
    def predict(self, instances: list[list[float]]) -> dict[str, list[int]]:
        return {"predictions": self.model.predict(np.asarray(instances)).tolist()}
