"""Class text embeddings from a CLIP text tower (docs/method.md §1.2)."""
import torch

from .templates import DEFAULT_TEMPLATE, ENSEMBLE_TEMPLATES


@torch.no_grad()
def text_features(model, tokenizer, classnames, template=DEFAULT_TEMPLATE, ensemble=False, device="cpu",
                  batch_size=256):
    """C×D class embeddings.

    Single template: the raw, unnormalised ``encode_text`` output. Ensemble: per class, each of the
    ``ENSEMBLE_TEMPLATES`` embeddings is L2-normalised, they are averaged, and the mean is normalised again.
    """
    templates = ENSEMBLE_TEMPLATES if ensemble else (template,)
    for t in templates:
        if "{}" not in t:
            raise ValueError(f"Prompt template {t!r} has no '{{}}' placeholder for the class name")
    names = [c.replace("_", " ") for c in classnames]
    if not ensemble:
        return _encode(model, tokenizer, [template.format(n) for n in names], device, batch_size)
    per_template = torch.stack(
        [_encode(model, tokenizer, [t.format(n) for n in names], device, batch_size) for t in templates]
    )
    per_template = per_template / per_template.norm(dim=-1, keepdim=True)
    mean = per_template.mean(dim=0)
    return mean / mean.norm(dim=-1, keepdim=True)


def _encode(model, tokenizer, prompts, device, batch_size):
    chunks = [
        model.encode_text(tokenizer(prompts[i:i + batch_size]).to(device))
        for i in range(0, len(prompts), batch_size)
    ]
    return torch.cat(chunks).float()
