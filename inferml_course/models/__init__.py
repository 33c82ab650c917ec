"""Models of the course: small CNNs, a training loop, the checkpoint zoo and :func:`as_classifier`
(Hugging Face and other models in the course's contract)."""
from .architectures import Ensemble, NarrowResNet, Normalize, SmallCNN, SmallVAE
from .training import accuracy, accuracy_under_corruptions, predict_logits, train_model, train_vae, vae_loss
from .wrappers import Classifier, as_classifier, logits_of
from .zoo import MODELS, ZOO, CheckpointError, ChecksumError, ModelSpec, build_model, load_model, save_checkpoint, train_zoo_model

__all__ = ["SmallCNN", "SmallVAE", "NarrowResNet", "Ensemble", "Normalize", "train_model", "train_vae", "vae_loss", "predict_logits", "accuracy", "load_model",
           "accuracy_under_corruptions", "build_model", "train_zoo_model", "save_checkpoint", "CheckpointError", "ChecksumError", "ModelSpec", "ZOO", "MODELS",
           "Classifier", "as_classifier", "logits_of"]
