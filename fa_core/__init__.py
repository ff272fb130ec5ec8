"""FA Lab engine: feedback-alignment learning rules, layers, models, training and checkpoints.

A library and a CLI (``python -m fa_core``); it never imports Streamlit.
"""

from .checkpoints import CheckpointError, load_checkpoint, read_checkpoint_metadata, save_checkpoint
from .layers import FeedbackConv2d, FeedbackLinear, LocallyConnected2d, feedback_layers, true_gradient
from .metrics import alignment_angles, angle_degrees, signal_alignment_angles
from .models import MODELS, Network, build_model
from .preprocess import preprocess_drawing
from .rules import RULES, LearningRule, get_rule, register_rule
from .training import ConfigError, RunControl, TrainConfig, evaluate, paper_protocol, train

__all__ = [
    "MODELS",
    "RULES",
    "CheckpointError",
    "ConfigError",
    "FeedbackConv2d",
    "FeedbackLinear",
    "LearningRule",
    "LocallyConnected2d",
    "Network",
    "RunControl",
    "TrainConfig",
    "alignment_angles",
    "angle_degrees",
    "build_model",
    "evaluate",
    "feedback_layers",
    "get_rule",
    "load_checkpoint",
    "paper_protocol",
    "preprocess_drawing",
    "read_checkpoint_metadata",
    "register_rule",
    "save_checkpoint",
    "signal_alignment_angles",
    "train",
    "true_gradient",
]
