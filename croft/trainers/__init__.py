"""Trainers. Importing this package registers every trainer.

Each module holds an engine-independent method class (``CRoFTMethod``, ...) and the registered
croft trainer ``Method + TrainerBase``; :data:`METHODS` maps each registered name to its method
class (``croft.dassl_bridge`` builds Dassl trainers from them).
"""
from . import clip_adapter, cocoop, coop, dplclip, tip_adapter  # noqa: F401  (baselines, docs/method.md §6)
from . import bcal, croft, vlad, zsclip  # noqa: F401

#: Registered trainer name -> its engine-independent method class.
METHODS = {
    "CRoFT": croft.CRoFTMethod,
    "ZeroshotCLIP": zsclip.ZeroshotCLIPMethod,
    "CoOp": coop.CoOpMethod,
    "CoCoOp": cocoop.CoCoOpMethod,
    "CLIP_Adapter": clip_adapter.CLIPAdapterMethod,
    "TIP_ADAPTER": tip_adapter.TipAdapterMethod,
    "DPLCLIP": dplclip.DPLCLIPMethod,
    "BCAL": bcal.BCALMethod,
    "VLAD": vlad.VLADMethod,
}
