"""Framework backends: tracing, cut points, profiling (torch first, TensorFlow next)."""
