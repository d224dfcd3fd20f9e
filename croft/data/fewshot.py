"""Few-shot samplers, deterministic given Python's ``random`` state (seeded from SEED)."""
import math
import random
from collections import defaultdict


def group_by(items, key):
    groups = defaultdict(list)
    for item in items:
        groups[key(item)].append(item)
    return groups


def sample_class_balanced(items, num_shots, rng=random, label_of=lambda d: d.label):
    """K items per label (all of a label's items when it has fewer than K).

    ``num_shots < 1`` returns the input unchanged (docs/method.md §7.2). Labels are visited in
    first-appearance order, so the result depends only on the input order and the RNG state. This
    is the original's ``generate_fewshot_dataset`` (without ``repeat``); a short class is not an
    error here, the engine logs a warning and ``results.json`` records ``shots_used``.
    ``label_of`` reads an item's label (default: ``item.label``).
    """
    if num_shots < 1:
        return list(items)
    out = []
    for group in group_by(items, label_of).values():
        out.extend(rng.sample(group, num_shots) if len(group) >= num_shots else group)
    return out


def sample_reference_balance(items, num_shots, rng=random):
    """The original CRoFT code's class-agnostic "balance" sampler (docs/method.md §7.2,
    docs/differences.md "Few-shot samplers").

    Label groups are visited in first-appearance order. For a label with at least K items, every
    domain of the *whole* source (in first-appearance order) contributes floor(K / n_domains) items
    drawn regardless of class, or all of its items when it has fewer. A label with fewer than K
    items contributes all of its own items. Kept only to reproduce the original runs: the result is
    not class-balanced and may repeat an item.

    Unlike ``sample_class_balanced``, nothing here can run short: the short cases take what exists,
    as the original did. A class that ends up with no item is reported by the dataset reader
    (every label must appear in ``train_x``).
    """
    if num_shots < 1:
        return list(items)
    by_domain = group_by(items, lambda d: d.domain)
    if not by_domain:
        return []
    per_domain = math.floor(num_shots / len(by_domain))
    out = []
    for group in group_by(items, lambda d: d.label).values():
        if len(group) < num_shots:
            out.extend(group)
            continue
        for domain_items in by_domain.values():
            out.extend(rng.sample(domain_items, per_domain) if len(domain_items) >= per_domain else domain_items)
    return out


SAMPLERS = {
    "class_balanced": sample_class_balanced,
    "reference_balance": sample_reference_balance,
}
