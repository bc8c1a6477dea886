"""2-D maps of labelled patch tokens: t-SNE (default), PCA or UMAP, and the
figure, one panel per stage coloured by GT class, one row per model.

**Why t-SNE.** The question is whether tokens of one class form tight
groups apart from the others, a question about neighbourhoods: t-SNE keeps
neighbourhoods, while PCA shows only the two directions of largest variance
and can hide separated groups. Both are scikit-learn's; UMAP uses
umap-learn (optional: ``pip install 'ct_mmseg[umap]'``). Every method is
seeded, so the same tokens give the same picture. t-SNE distances between
groups and group sizes carry no meaning; read the cosine table
(:mod:`.similarity`) for numbers.
"""
from typing import List, Optional, Sequence

import torch

from .embeddings import ModelTokens

METHOD_NAMES = {'tsne': 't-SNE (scikit-learn)', 'pca': 'PCA',
                'umap': 'UMAP'}


def pca(x: torch.Tensor, dim: int = 2) -> torch.Tensor:
    """Project the rows of ``x`` on their ``dim`` principal axes
    (scikit-learn's PCA, whose sign convention makes the result
    deterministic); zero columns pad the result when ``x`` has fewer rows or
    features than ``dim``."""
    from sklearn.decomposition import PCA
    n, features = x.shape
    out = torch.zeros(n, dim, dtype=torch.float64)
    components = min(dim, n, features)
    if n >= 2 and components >= 1:
        out[:, :components] = torch.from_numpy(
            PCA(n_components=components, svd_solver='full').fit_transform(
                x.double().numpy()))
    return out


def tsne(x: torch.Tensor, perplexity: float = 30.0, iterations: int = 1000,
         dim: int = 2, seed: int = 0) -> torch.Tensor:
    """scikit-learn's t-SNE of the rows of ``x`` (PCA initialisation,
    learning rate 'auto', Barnes-Hut), seeded so the same tokens give the
    same picture.

    Args:
        x (Tensor): (n, D).
        perplexity (float): effective neighbours; lowered to (n - 1) / 3 for
            few points, as t-SNE needs perplexity < n.
        iterations (int): gradient steps (scikit-learn needs >= 250).
        seed (int): ``random_state``.

    Returns:
        Tensor: (n, dim), float64.
    """
    import inspect

    from sklearn.manifold import TSNE
    n = x.shape[0]
    if n < 4:  # too few points for neighbourhoods: fall back to PCA
        return pca(x, dim)
    # scikit-learn 1.5 renamed n_iter to max_iter (and 1.7 dropped n_iter)
    steps_key = 'max_iter' if 'max_iter' in inspect.signature(
        TSNE).parameters else 'n_iter'
    model = TSNE(n_components=dim, perplexity=min(perplexity, (n - 1) / 3),
                 init='pca', learning_rate='auto', random_state=seed,
                 **{steps_key: max(int(iterations), 250)})
    return torch.from_numpy(model.fit_transform(x.double().numpy()))


def umap_2d(x: torch.Tensor, neighbours: int = 15, seed: int = 0
            ) -> torch.Tensor:
    """UMAP of the rows of ``x`` (needs ``pip install umap-learn``)."""
    try:
        import umap
    except ImportError as error:
        raise ImportError(
            "--method umap needs umap-learn: pip install 'ct_mmseg[umap]' "
            '(or umap-learn)') from error
    n = x.shape[0]
    if n < 4:
        return pca(x, 2)
    model = umap.UMAP(n_components=2, n_neighbors=min(neighbours, n - 1),
                      random_state=seed)
    return torch.from_numpy(model.fit_transform(x.double().numpy()))


def embed_2d(tokens: torch.Tensor, method: str = 'tsne',
             perplexity: float = 30.0, iterations: int = 1000,
             seed: int = 0) -> torch.Tensor:
    """2-D coordinates of the rows of ``tokens`` by ``method`` ('tsne',
    'pca' or 'umap')."""
    if method == 'pca':
        return pca(tokens).float()
    if method == 'umap':
        return umap_2d(tokens, seed=seed).float()
    if method != 'tsne':
        raise ValueError(f'--method must be tsne, pca or umap, got {method!r}')
    return tsne(tokens, perplexity=perplexity, iterations=iterations,
                seed=seed).float()


def _class_colours(num_classes):
    """tab10 colours, one per class (cycling after 10)."""
    import matplotlib
    cmap = matplotlib.colormaps['tab10']
    return [cmap(k % 10) for k in range(num_classes)]


def embed_model(model: ModelTokens, method: str = 'tsne',
                perplexity: float = 30.0, iterations: int = 1000,
                seed: int = 0) -> List[torch.Tensor]:
    """2-D coordinates of every stage's tokens (computed once per model, as
    the single-model and the comparison figures show the same maps)."""
    return [embed_2d(st.tokens, method, perplexity, iterations, seed)
            if st.labels.numel() else torch.zeros(0, 2)
            for st in model.stages]


def _draw_row(axes, model: ModelTokens, coords: Sequence[torch.Tensor],
              colours, row_label: Optional[str] = None):
    """One model's panels: per stage, its tokens' 2-D ``coords`` (n, 2)
    coloured by class."""
    for ax, st, xy in zip(axes, model.stages, coords):
        ax.set_xticks([])
        ax.set_yticks([])
        ax.set_title(f'stage {st.stage} (stride {st.stride}), '
                     f'{st.labels.numel()} tokens', fontsize=9)
        if st.labels.numel() == 0:
            ax.text(0.5, 0.5, 'no pure patch', ha='center', va='center',
                    transform=ax.transAxes)
            continue
        xy = xy.numpy()
        labels = st.labels.numpy()
        for k in range(len(model.classes)):
            sel = labels == k
            if sel.any():
                ax.scatter(xy[sel, 0], xy[sel, 1], s=6, alpha=0.8,
                           color=colours[k], linewidths=0)
    if row_label:
        axes[0].set_ylabel(row_label, fontsize=9)


def _legend(fig, classes, colours):
    """One marker per class, below the panels."""
    from matplotlib.lines import Line2D
    handles = [Line2D([], [], marker='o', linestyle='', color=colours[k],
                      label=name) for k, name in enumerate(classes)]
    fig.legend(handles=handles, loc='lower center', ncol=len(classes),
               fontsize=8, frameon=False)


def plot_models(models: Sequence[ModelTokens],
                coords: Sequence[Sequence[torch.Tensor]], out_path: str,
                method: str, dpi: int = 100) -> str:
    """One row of panels (one per stage) per model, saved as a PNG.

    ``coords[m][s]`` are the 2-D coordinates of model m's stage s tokens
    (:func:`embed_model`); ``method`` only labels the figure.
    """
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt

    cols = max(len(m.stages) for m in models)
    fig, axes = plt.subplots(len(models), cols, squeeze=False,
                             figsize=(3.0 * cols, 3.0 * len(models) + 0.9))
    colours = _class_colours(len(models[0].classes))
    for row, model, xy in zip(axes, models, coords):
        _draw_row(row, model, xy, colours,
                  row_label=f'{model.name}\n{model.space}')
        for ax in row[len(model.stages):]:
            ax.axis('off')
    fig.suptitle(f'Pure-patch tokens coloured by GT class, '
                 f'{METHOD_NAMES[method]}', fontsize=10)
    _legend(fig, models[0].classes, colours)
    fig.tight_layout(rect=(0, 0.06, 1, 0.95))
    fig.savefig(out_path, dpi=dpi)
    plt.close(fig)
    return out_path
