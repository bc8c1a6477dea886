"""What Contrastive Transformer costs: training step, memory, inference.

``tools/benchmark_ct.py`` is the command line; one module per concern:

* :mod:`.models`: one MMSeg config built twice in one process, the
  **baseline** (the config's own ``model``, the CT injection skipped) and
  the **CT** model (the same config after
  :func:`ct_mmseg.config_injection.add_ct_to_config`), with identical
  weights for every shared module (the CT model gets the baseline's state
  dict; only the CT head's projections are its own);
* :mod:`.synthetic_gt`: batches whose GT looks like real segmentation
  batches (:func:`realistic_gt`: a handful of classes per image, Voronoi
  regions, long-tailed class draw);
* :mod:`.timing`: the **training step** (forward + backward + optimizer
  step, the config's optimizer and paramwise settings); after warm-up the
  two models alternate step by step, A B B A A B ..., and the median over
  ``--steps`` steps of each is reported. On the CPU the process CPU time is
  reported next to the wall time: on a shared machine it is the steadier of
  the two;
* :mod:`.memory`: the **peak memory of a training step**, the most bytes
  held by tensors during one step above what was held when it started
  (after ``zero_grad``), plus the resident state (parameters, buffers,
  optimizer state): CUDA's ``max_memory_allocated``, or on the CPU the peak
  of the allocator's running total as reported to torch's profiler;
* :mod:`.ratios`: CT / baseline ratios and the 95 % t-interval of the
  per-round ratio (the study's :func:`ct_mmseg.study.statistics.
  t_half_width`);
* :mod:`.full_step`: the default mode, which also measures **inference**
  (parameters of the modules that run in ``model.predict``, matmul/conv
  FLOPs of ``model.predict`` on one image, and whether both models predict
  exactly the same logits); targets on a GPU: step time <= 1.03x, memory
  <= 1.03x, inference exactly 1.00x;
* :mod:`.sweep`: ``--sweep``, the CT head alone on fixed backbone-shaped
  features, for image sizes x numbers of classes present x dataset class
  counts x losses (optionally with no ``num_samples`` bound);
* :mod:`.profiling`: ``--profile``, the CT head alone on the batch's
  backbone features (time, peak, kernel-like op count, top ops);
* :mod:`.report`: the printed table, the JSON, the sweep's tables and plot.
"""
from .full_step import benchmark
from .ratios import paired_ratio_interval, sweep_ratios
from .sweep import sweep
from .synthetic_gt import make_batch, realistic_gt, zipf_classes

__all__ = ['benchmark', 'make_batch', 'paired_ratio_interval',
           'realistic_gt', 'sweep', 'sweep_ratios', 'zipf_classes']
