"""The control plane's lifecycles around its kernel: one module per kind of thing."""
