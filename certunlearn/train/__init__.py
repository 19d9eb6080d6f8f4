"""Deterministic mini-batch SGD with a recorded schedule, and the coupled retrain oracle."""

from certunlearn.train.config import SGDConfig
from certunlearn.train.schedule import Schedule, Step
from certunlearn.train.sgd import (
    NORMALIZATIONS,
    StepInfo,
    TrainingObserver,
    TrainResult,
    coupled_retrain,
    train_sgd,
)

__all__ = [
    "NORMALIZATIONS",
    "SGDConfig",
    "Schedule",
    "Step",
    "StepInfo",
    "TrainResult",
    "TrainingObserver",
    "coupled_retrain",
    "train_sgd",
]
