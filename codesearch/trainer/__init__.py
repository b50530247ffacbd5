"""Trainer: specialises the encoder for Rust, formal methods and personal code. See issue 3."""
