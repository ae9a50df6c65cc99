"""The floor of overhead: a bare Starlette app calling model.predict, nothing else."""

import json
import pickle
import sys

import numpy as np
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

with open(sys.argv[1], "rb") as f:
    model = pickle.load(f)


async def predict(request: Request) -> JSONResponse:
    rows = json.loads(await request.body())["instances"]
    return JSONResponse({"predictions": model.predict(np.asarray(rows)).tolist()})


async def ready(request: Request) -> JSONResponse:
    return JSONResponse({"ready": True})


app = Starlette(routes=[Route("/predict", predict, methods=["POST"]), Route("/v2/health/ready", ready)])
uvicorn.run(app, host="127.0.0.1", port=int(sys.argv[2]), log_level="warning", access_log=False)
