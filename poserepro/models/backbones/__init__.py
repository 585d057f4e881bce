"""CNN backbones: ResNet (ResNet-S, R-50/101), HRNet, BoTNet MHSA."""
