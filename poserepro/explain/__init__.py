"""Attention explanations, one module per family's figures: dependency / affected areas of predicted keypoints
(TransPose, BTranspose encoder and MHSA blocks), position-embedding similarity (TransPose), q2q attention and
deformable sampling points (TFPose), decoder refinement and per-query classes (PRTR)."""

from .dependency import (
    DependencyMaps,
    dependency_areas,
    dependency_numbers,
    render_dependency_figure,
    render_dependency_grid,
)
from .position import PositionSimilarity, position_numbers, position_similarity, render_position_similarity
from .prtr import (
    QueryClasses,
    Refinement,
    query_class_numbers,
    query_classes,
    refinement,
    refinement_numbers,
    render_query_classes,
    render_query_locations,
    render_refinement,
)
from .tfpose import (
    QueryAttention,
    SamplingPoints,
    q2q_attention,
    q2q_numbers,
    render_q2q,
    render_sampling_points,
    sampling_numbers,
    sampling_points,
)

__all__ = [
    "DependencyMaps", "PositionSimilarity", "QueryAttention", "QueryClasses", "Refinement", "SamplingPoints",
    "dependency_areas", "dependency_numbers", "position_numbers", "position_similarity", "q2q_attention",
    "q2q_numbers", "query_class_numbers", "query_classes", "refinement", "refinement_numbers",
    "render_dependency_figure", "render_dependency_grid", "render_position_similarity", "render_q2q",
    "render_query_classes", "render_query_locations", "render_refinement", "render_sampling_points",
    "sampling_numbers", "sampling_points",
]
