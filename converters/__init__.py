"""Host-side toolchain (needs torch): load, prune, export, quantize, build, validate, train."""
