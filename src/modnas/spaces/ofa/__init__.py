"""Once-for-All MobileNetV3 (``ofa_mbv3_d234_e346_k357_w1.2``): the MODNAS paper's ImageNet search space."""

from modnas.spaces.ofa.arch import DEPTHS, EXPANDS, KERNELS, NUM_SLOTS, NUM_STAGES, RESOLUTIONS, OFAArch

__all__ = ["DEPTHS", "EXPANDS", "KERNELS", "NUM_SLOTS", "NUM_STAGES", "RESOLUTIONS", "OFAArch"]
