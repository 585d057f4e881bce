"""Attention explanations: TransPose's dependency and affected areas of predicted keypoints."""

from .dependency import DependencyMaps, dependency_areas, render_dependency_figure

__all__ = ["DependencyMaps", "dependency_areas", "render_dependency_figure"]
