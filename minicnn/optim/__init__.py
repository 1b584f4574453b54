"""Optimizers and learning-rate schedules, with PyTorch's names, signatures and update rules.

    import minicnn.optim as optim

    optimizer = optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    scheduler = optim.StepLR(optimizer, step_size=30)
    ...
    optimizer.zero_grad(); loss.backward(); optimizer.step()   # per batch
    scheduler.step()                                           # per epoch

`state_dict()` of both returns {"config": JSON-able dict, "arrays": {name: np.ndarray}} (no pickle);
see `minicnn.optim.optimizer`. `minicnn.optim.lr_scheduler` is also importable under PyTorch's path.
"""

from minicnn.optim.adam import Adam, AdamW
from minicnn.optim.lr_scheduler import CosineAnnealingLR, LRScheduler, MultiStepLR, StepLR
from minicnn.optim.optimizer import Optimizer
from minicnn.optim.sgd import SGD

__all__ = ["SGD", "Adam", "AdamW", "CosineAnnealingLR", "LRScheduler", "MultiStepLR", "Optimizer", "StepLR"]
