"""Cone-beam CT reconstruction (FDK) as pure kernels for the MapReduce/Spark job.

geometry (scanner + grid conventions), phantom (analytic ground truth), filters (pre-weight and
ramp), fdk_reference (NumPy definition), fdk_fast (numba), fdk_cupy (GPU), backends (choose one),
bands (per angle x detector-row band pieces the Spark job maps over).
"""
