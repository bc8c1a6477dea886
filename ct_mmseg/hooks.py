"""ContrastiveTransformerHook: makes every MMEngine runner import ct_mmseg."""
from mmengine.hooks import Hook
from mmengine.logging import print_log

from .models import ContrastiveTransformerHead
from .registry import HOOKS


@HOOKS.register_module()
class ContrastiveTransformerHook(Hook):
    """Reports the CT set-up; its scoped type name imports ct_mmseg.

    The CT config fragment lists this hook in ``custom_hooks``. Resolving
    ``'ct_mmseg.ContrastiveTransformerHook'`` imports the package in any
    runner, including MMSeg's ``tools/test.py`` (which ignores
    ``runner_type``), so ct_mmseg's weights-only checkpoint loader is in place
    before the checkpoint is read. Before training it logs what CT will do
    (stages, channels, strides, loss) so a wrong inference shows up at once.
    """

    priority = 'VERY_LOW'

    def before_train(self, runner) -> None:
        model = runner.model.module if hasattr(runner.model, 'module') \
            else runner.model
        heads = [m for m in model.modules()
                 if isinstance(m, ContrastiveTransformerHead)]
        if not heads:
            print_log('ContrastiveTransformerHook: the model has no '
                      'ContrastiveTransformerHead, CT is OFF (build the '
                      "runner with runner_type='ct_mmseg.CTRunner')",
                      logger='current', level=30)
            return
        for head in heads:
            loss = head.loss_decode
            print_log(
                'Contrastive Transformer: stages in_index='
                f'{list(head.in_index)} channels={list(head.in_channels)} '
                f'strides={list(head.strides)} classes={head.num_classes} '
                f'ignore_index={head.ignore_index} mode={loss.mode} '
                f'clip={loss.clip_value} ({loss.clip_mode}) '
                f'num_samples={head.num_samples}', logger='current')
