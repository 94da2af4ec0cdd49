"""Pydantic models of the custom resources (InferencePipeline, DeviceProfile)."""
