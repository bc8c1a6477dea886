"""Seeing what CT does: library functions of the figure tools.

* :mod:`.embeddings`: the labelled pure-patch tokens of a segmentor, in CT's
  projection space or the backbone's (``tools/plot_embeddings.py``);
* :mod:`.embedding_maps`: their 2-D maps (t-SNE, PCA, UMAP) and figures;
* :mod:`.similarity`: their intra- and inter-class cosine table;
* :mod:`.ct_patches`: CT's positive and negative patches of one class per
  stride (``tools/draw_ct_patches.py``);
* :mod:`.curves`: training curves through MMSeg's ``analyze_logs.py``
  (``tools/plot_ct_curves.py``);
* :mod:`.probe_report`: inputs and tables of the frozen-token probes
  (``tools/probe_tokens.py``);
* :mod:`.prediction_figure`: image | ground truth | prediction panels of
  held-out images with the per-class IoU (``tools/show_predictions.py``).

Nothing is imported here: each module imports what it needs (matplotlib
and scikit-learn only inside the functions that use them).
"""
