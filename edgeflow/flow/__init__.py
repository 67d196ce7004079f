"""Optical-flow utilities for the device runtime: file formats, visualisation and metrics.

numpy only (OpenCV is used opportunistically when importable, never required). Flow is always an
HxWx2 float32 array of (u, v) pixels; see ``docs/flow.md`` for formats and metric definitions.
"""

from edgeflow.flow.io import (
    decode_flo,
    decode_kitti_png,
    encode_flo,
    encode_kitti_png,
    read_flo,
    read_flow,
    read_kitti_png,
    write_flo,
    write_flow,
    write_kitti_png,
)
from edgeflow.flow.metrics import (
    FlowMetricsAggregator,
    aggregate_metrics,
    end_point_error,
    flow_metrics,
)
from edgeflow.flow.visualize import error_to_color, flow_to_color, make_colorwheel, side_by_side

__all__ = [
    "FlowMetricsAggregator",
    "aggregate_metrics",
    "decode_flo",
    "decode_kitti_png",
    "encode_flo",
    "encode_kitti_png",
    "end_point_error",
    "error_to_color",
    "flow_metrics",
    "flow_to_color",
    "make_colorwheel",
    "read_flo",
    "read_flow",
    "read_kitti_png",
    "side_by_side",
    "write_flo",
    "write_flow",
    "write_kitti_png",
]
