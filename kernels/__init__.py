"""GPU kernel tasks (Triton / PyTorch), with their own checker and timer."""
