"""Turning folders of code into an index: walk -> chunk -> encode -> store."""
