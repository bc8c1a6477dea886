"""Plain-PyTorch pieces of Contrastive Transformer: no MMSeg import here."""
from .losses import (ClassLosses, cl_class_losses, cl_pair_loss,
                     infonce_class_losses)
from .mining import (PAIR_SELECTIONS, Candidates, InfoNCETriplets, Pairs,
                     hard_infonce_triplets, infonce_kept_width,
                     hard_negative_pairs, hard_positive_pairs,
                     sample_candidates)
from .patch_labels import (PatchMasks, align_gt_to_grid, check_labels,
                           compact_labels, positive_counts,
                           classes_present, patch_class_presence, patch_masks,
                           StageLabels, stage_classes_present, stage_labels,
                           stage_patch_masks, stage_positive_counts)
from .purity import (check_purity, majority_positive_counts,
                     majority_positive_masks, stage_majority_labels)
from .reduction import (CLIP_MODES, clip_stage_losses, masked_mean,
                        stage_loss)
from .projection import (gather_tokens, mlp_linears, project_tokens,
                         projected_tokens, projects_every_token,
                         scatter_tokens)

__all__ = [
    'ClassLosses', 'cl_class_losses', 'cl_pair_loss', 'infonce_class_losses',
    'masked_mean', 'stage_loss', 'clip_stage_losses', 'CLIP_MODES',
    'PAIR_SELECTIONS', 'Candidates', 'InfoNCETriplets',
    'Pairs', 'hard_infonce_triplets', 'infonce_kept_width',
    'hard_negative_pairs', 'hard_positive_pairs', 'sample_candidates',
    'PatchMasks', 'align_gt_to_grid', 'check_labels', 'classes_present',
    'compact_labels', 'positive_counts',
    'patch_class_presence', 'patch_masks', 'StageLabels',
    'stage_classes_present', 'stage_labels', 'stage_patch_masks', 'stage_positive_counts', 'gather_tokens', 'mlp_linears',
    'project_tokens', 'projected_tokens', 'projects_every_token',
    'scatter_tokens'
]
__all__ += ['check_purity', 'majority_positive_counts',
            'majority_positive_masks', 'stage_majority_labels']
