"""Operating the target: the `dativo` CLI, preflight and doctor checks, reading tables back."""
