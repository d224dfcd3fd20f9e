"""The frozen CLIP image encoder as a plain callable (images -> raw fp32 features)."""
import torch


def autocast_context(device, mode):
    """``MODEL.AUTOCAST`` on CUDA (fp16 / bf16); a disabled context on a CPU or for fp32."""
    device = torch.device(device)
    if device.type != "cuda" or mode == "fp32":
        return torch.autocast(device_type=device.type, enabled=False)
    return torch.autocast(device_type="cuda", dtype=torch.float16 if mode == "fp16" else torch.bfloat16)


class FrozenImageEncoder:
    """``encoder(images)``: raw (unnormalised) fp32 features of ``clip_model.encode_image``, no gradients."""

    def __init__(self, clip_model, device, autocast="fp32"):
        self.clip_model = clip_model
        self.device = torch.device(device)
        self.autocast = autocast

    @torch.no_grad()
    def __call__(self, images):
        with autocast_context(self.device, self.autocast):
            features = self.clip_model.encode_image(images)
        return features.float()
