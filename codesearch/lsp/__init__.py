"""Language server (pygls): search inside any editor. See issue 4."""
