"""Use the field's trained models: SEDD checkpoints as ddiff objects.

`load_sedd(path)` reads a checkpoint of the SEDD reference code (Lou, Meng & Ermon, ICML 2024),
in its Hugging Face layout or as a training run directory, into a `ddiff.pretrained.Pretrained`:
a `SeddScoreNet` (the reference network, parameter for parameter), the graph and the schedule.
ddiff's samplers, infill conditions and likelihood bound then take it as they take a model
trained by ddiff::

    from ddiff.interop import load_sedd

    model = load_sedd("path/to/sedd-checkpoint")
    tokens = model.sampler().sample(model.net, batch=4, length=128, steps=64)
"""

from ddiff.interop.sedd import (
    HF_CONFIG,
    HF_WEIGHTS,
    LOGLINEAR_SURVIVAL,
    RUN_CHECKPOINT,
    RUN_CONFIG,
    SeddConfig,
    SeddNetConfig,
    is_sedd_checkpoint,
    load_sedd,
    sedd_schedule,
)
from ddiff.interop.sedd_net import SeddScoreNet

__all__ = [
    "HF_CONFIG",
    "HF_WEIGHTS",
    "LOGLINEAR_SURVIVAL",
    "RUN_CHECKPOINT",
    "RUN_CONFIG",
    "SeddConfig",
    "SeddNetConfig",
    "SeddScoreNet",
    "is_sedd_checkpoint",
    "load_sedd",
    "sedd_schedule",
]
