"""Few-shot samplers, deterministic given Python's ``random`` state (seeded from SEED)."""
import math
import random
from collections import defaultdict


def group_by(items, key):
    groups = defaultdict(list)
    for item in items:
        groups[key(item)].append(item)
    return groups


def sample_class_balanced(items, num_shots, rng=random):
    """K items per label (all of a label's items when it has fewer than K).

    ``num_shots < 1`` returns the input unchanged (docs/method.md §7.2). Labels are visited in
    first-appearance order, so the result depends only on the input order and the RNG state.
    """
    if num_shots < 1:
        return list(items)
    out = []
    for group in group_by(items, lambda d: d.label).values():
        out.extend(rng.sample(group, num_shots) if len(group) >= num_shots else group)
    return out


def sample_reference_balance(items, num_shots, rng=random):
    """The reference's class-agnostic "balance" sampler (docs/method.md §7.2).

    For every label group with at least K items, draw floor(K / n_domains) items per domain
    from the *whole* source, regardless of class. Kept only to reproduce the original runs.
    """
    if num_shots < 1:
        return list(items)
    by_domain = group_by(items, lambda d: d.domain)
    per_domain = math.floor(num_shots / len(by_domain))
    out = []
    for group in group_by(items, lambda d: d.label).values():
        if len(group) < num_shots:
            continue
        for domain_items in by_domain.values():
            out.extend(rng.sample(domain_items, per_domain))
    return out


SAMPLERS = {
    "class_balanced": sample_class_balanced,
    "reference_balance": sample_reference_balance,
}
