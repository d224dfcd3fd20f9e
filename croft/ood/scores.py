"""Open-set (OOD) detection scores.

Every score follows one convention: **higher = more in-distribution (ID)**. All functions are pure,
take torch tensors and return a 1-D tensor with one score per sample, on the input's device.

* ``energy``    -- ``logsumexp`` of the logits over classes (the positive "energy" of docs/method.md §0
  and docs/protocols.md §3; the logits already contain CLIP's scale ``s``).
* ``max_logit`` -- the largest logit.
* ``mcm``       -- Maximum Concept Matching (Ming et al., 2022): the largest softmax probability of the
  cosine similarities between the image and the class text embeddings, divided by a temperature;
  returned as its logarithm (float64), which ranks samples the same way and does not saturate.
* ``knn``       -- deep nearest neighbours (Sun et al., 2022): minus the L2 distance between the
  L2-normalised query and its k-th nearest neighbour in a bank of L2-normalised ID features. The
  reference (docs/protocols.md §3) uses the *squared* distance (faiss ``IndexFlatL2``); pass ``squared=True`` for
  that. Both give the same ranking, hence the same AUROC/AUPR/FPR.
"""
import torch
import torch.nn.functional as F

__all__ = ["energy_score", "max_logit_score", "mcm_score", "knn_score"]


def _as_float(x, name):
    if not isinstance(x, torch.Tensor):
        x = torch.as_tensor(x)
    if not x.is_floating_point():
        x = x.to(torch.get_default_dtype())
    elif x.dtype in (torch.float16, torch.bfloat16):
        # low-precision reductions (logsumexp, softmax, distances) lose too much; score in fp32
        x = x.float()
    return x


def _check_2d(x, name):
    if x.dim() != 2:
        raise ValueError(f"{name} must be a 2-D tensor (samples x dims), got shape {tuple(x.shape)}")
    if x.shape[0] == 0:
        raise ValueError(f"{name} is empty (0 rows)")
    if x.shape[1] == 0:
        raise ValueError(f"{name} has 0 columns")


def energy_score(logits, temperature=1.0):
    """``T * logsumexp(logits / T)`` over the last dimension (``T = 1``: plain ``logsumexp``).

    ``logits``: (N, C) tensor (any leading shape works; the reduction is over the last dim).
    Numerically stable for large logits (torch's logsumexp subtracts the max).
    """
    logits = _as_float(logits, "logits")
    if logits.dim() == 0 or logits.shape[-1] == 0:
        raise ValueError(f"logits must have at least one class on the last dim, got shape {tuple(logits.shape)}")
    if not temperature > 0:
        raise ValueError(f"temperature must be > 0, got {temperature}")
    if temperature == 1.0:
        return torch.logsumexp(logits, dim=-1)
    return temperature * torch.logsumexp(logits / temperature, dim=-1)


def max_logit_score(logits):
    """The largest logit over the last dimension."""
    logits = _as_float(logits, "logits")
    if logits.dim() == 0 or logits.shape[-1] == 0:
        raise ValueError(f"logits must have at least one class on the last dim, got shape {tuple(logits.shape)}")
    return logits.max(dim=-1).values


def mcm_score(image_features, text_features, temperature=1.0):
    """MCM: ``max_c softmax_c(cos(x, t_c) / temperature)``.

    ``image_features``: (N, D), ``text_features``: (C, D). Both are L2-normalised row-wise here, so the
    score does not depend on the feature scale. The MCM paper uses ``temperature = 1``; note that a
    temperature of ``1/s`` (e.g. 0.01) gives CLIP's usual max-softmax probability.
    """
    img = _as_float(image_features, "image_features")
    txt = _as_float(text_features, "text_features")
    _check_2d(img, "image_features")
    _check_2d(txt, "text_features")
    if img.shape[1] != txt.shape[1]:
        raise ValueError(f"image_features have dim {img.shape[1]} but text_features have dim {txt.shape[1]}")
    if not temperature > 0:
        raise ValueError(f"temperature must be > 0, got {temperature}")
    # At a low temperature (e.g. 0.01) the top softmax probability rounds to exactly 1.0 for many
    # samples, even in float64, and their ranking (hence AUROC / FPR95) is lost. So the score is the
    # *log* of the maximum softmax probability, log p_max = -log(1 + sum_{c != max} exp(s_c - s_max)),
    # in float64 with log1p: monotone in MCM (same metrics), and distinct where p_max is not.
    img = F.normalize(img.double(), dim=-1)
    txt = F.normalize(txt.to(device=img.device, dtype=torch.float64), dim=-1)
    logits = (img @ txt.t()) / temperature
    top = logits.max(dim=-1, keepdim=True)
    others = torch.exp(logits - top.values).scatter(-1, top.indices, 0.0).sum(dim=-1)
    return -torch.log1p(others)


def knn_score(query_features, bank_features, k, squared=False, chunk_size=1024):
    """Minus the distance from each query to its k-th nearest neighbour in the bank.

    Rows of both inputs are L2-normalised first, so neighbours are ranked by cosine similarity; the
    search uses one (chunk x bank) similarity matrix per ``chunk_size`` queries, so memory is
    ``O(chunk_size * len(bank))`` rather than ``O(len(query) * len(bank))``. The distance to the chosen
    neighbour is then computed exactly as ``||q - b||``.

    ``k`` is 1-based (``k=1``: the nearest neighbour). ``squared=False`` returns ``-||q - b_k||`` (Sun et
    al.); ``squared=True`` returns ``-||q - b_k||^2`` as in the reference script (faiss ``IndexFlatL2``).
    A query that is itself in the bank has distance 0 to itself (it is not excluded).
    """
    q = _as_float(query_features, "query_features")
    b = _as_float(bank_features, "bank_features")
    _check_2d(q, "query_features")
    _check_2d(b, "bank_features")
    if q.shape[1] != b.shape[1]:
        raise ValueError(f"query_features have dim {q.shape[1]} but bank_features have dim {b.shape[1]}")
    if isinstance(k, bool) or int(k) != k:
        raise ValueError(f"k must be an integer, got {k!r}")
    k = int(k)
    if k < 1:
        raise ValueError(f"k must be >= 1, got k={k}")
    if k > b.shape[0]:
        raise ValueError(f"k={k} is larger than the bank size ({b.shape[0]} features)")
    if int(chunk_size) < 1:
        raise ValueError(f"chunk_size must be >= 1, got {chunk_size}")
    chunk_size = int(chunk_size)

    dtype = torch.promote_types(q.dtype, b.dtype)
    b = F.normalize(b.to(device=q.device, dtype=dtype), dim=-1)
    q = F.normalize(q.to(dtype), dim=-1)
    out = torch.empty(q.shape[0], dtype=torch.float64, device=q.device)
    bt = b.t()
    for start in range(0, q.shape[0], chunk_size):
        qc = q[start:start + chunk_size]
        # on the unit sphere the k-th nearest neighbour is the one with the k-th largest cosine
        idx = torch.topk(qc @ bt, k, dim=1, largest=True, sorted=True).indices[:, k - 1]
        # distance recomputed from the difference: exact even for near-duplicates, where
        # 2 - 2 cos would cancel catastrophically
        # in float64, so that distinct distances do not collapse into ties through rounding
        out[start:start + chunk_size] = (qc.double() - b[idx].double()).pow(2).sum(dim=1)
    if not squared:
        out = out.sqrt()
    return -out
