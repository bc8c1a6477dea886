"""DINO's two warm-ups as one hook (mmpretrain 1.2.0 has neither).

mmpretrain's ``WarmupParamHook`` ramps a value up from 0, but DINO's teacher
temperature starts at 0.04, so it cannot serve here.
"""
from typing import Optional

from mmengine.hooks import Hook
from mmengine.model import is_model_wrapper

from .registry import HOOKS


def teacher_temperature(iteration: int, warmup_iters: int, start: float,
                        end: float) -> float:
    """DINO's schedule: linear from ``start`` to ``end`` over the warm-up,
    ``end`` afterwards."""
    if iteration >= warmup_iters:
        return end
    return start + (end - start) * iteration / warmup_iters


@HOOKS.register_module()
class DINOScheduleHook(Hook):
    """Before every iteration, set DINO's teacher temperature (``model.head``:
    both loss terms of ADCLR) and whether the last layer of the projection
    (``model.neck``) is frozen.

    Give each duration either in iterations or in epochs (epochs are
    converted with the length of the train dataloader).

    Args:
        warmup_teacher_temp: temperature at iteration 0 (DINO 0.04).
        teacher_temp: temperature after the warm-up (DINO 0.07).
        warmup_iters / warmup_epochs: length of the linear warm-up (DINO: 30
            epochs).
        freeze_last_layer_iters / freeze_last_layer_epochs: the neck's last
            layer gets no gradient this long (DINO: 1 epoch).
    """
    priority = 'NORMAL'

    def __init__(self,
                 warmup_teacher_temp: float = 0.04,
                 teacher_temp: float = 0.07,
                 warmup_iters: Optional[int] = None,
                 warmup_epochs: Optional[float] = None,
                 freeze_last_layer_iters: Optional[int] = None,
                 freeze_last_layer_epochs: Optional[float] = None):
        self.warmup_teacher_temp = warmup_teacher_temp
        self.teacher_temp = teacher_temp
        self.durations = dict(
            warmup=self.one_of('warmup', warmup_iters, warmup_epochs),
            freeze_last_layer=self.one_of('freeze_last_layer',
                                          freeze_last_layer_iters,
                                          freeze_last_layer_epochs))
        self.warmup_iters = self.freeze_last_layer_iters = 0

    @staticmethod
    def one_of(name, iters, epochs):
        if iters is not None and epochs is not None:
            raise ValueError(
                f'DINOScheduleHook: give {name}_iters or {name}_epochs, not '
                'both (custom_hooks)')
        for unit, value in (('iters', iters), ('epochs', epochs)):
            if value is not None and value < 0:
                raise ValueError(f'DINOScheduleHook: {name}_{unit} must be '
                                 f'>= 0, got {value} (custom_hooks)')
        return ('iters', iters) if epochs is None else ('epochs', epochs)

    def before_train(self, runner) -> None:
        lengths = {}
        for name, (unit, value) in self.durations.items():
            if value is None:
                lengths[name] = 0
            elif unit == 'iters':
                lengths[name] = int(value)
            else:
                lengths[name] = round(value * len(runner.train_dataloader))
        self.warmup_iters = lengths['warmup']
        self.freeze_last_layer_iters = lengths['freeze_last_layer']

    def before_train_iter(self, runner, batch_idx: int,
                          data_batch=None) -> None:
        model = runner.model.module if is_model_wrapper(runner.model) \
            else runner.model
        model.head.teacher_temp = teacher_temperature(
            runner.iter, self.warmup_iters, self.warmup_teacher_temp,
            self.teacher_temp)
        model.neck.freeze_last_layer = \
            runner.iter < self.freeze_last_layer_iters
